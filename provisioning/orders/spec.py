"""The order spec (`order.yml`): safe, bounded YAML in; a validated, easy-to-use `OrderSpec` out.

Every bad field is reported by its path (`api.services[1].repository.url`), all at once, so that the
person who wrote the order fixes it in one go. Nothing here touches the database.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from django.core.exceptions import ValidationError

from provisioning.orders import conf
from provisioning.orders.choices import DEPLOYABLE_TYPES, KNOWN_TYPES, OrderAction, Section

MAX_BYTES = 64 * 1024
MAX_DEPTH = 12
MAX_SERVICES = 50
MAX_DOMAINS = 50

TOP_KEYS = {"action", "environment_id", *Section.values}
SECTION_KEYS = {"domains", "services"}
SERVICE_KEYS = {"id", "path", "repository", "roles", "variables", "type"}
REPOSITORY_KEYS = {"url", "version"}

IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
PATH = re.compile(r"^/(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*)?$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
# Characters that Jinja, a shell or a YAML quote would read as syntax: never part of an order's URLs,
# refs, paths or ids, whatever else the field's own pattern allows.
TEMPLATE_CHARACTERS = frozenset("{}%'\"`$")
SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9_.-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:]+)$")
# Names the deploy sets itself; an order may not shadow them with vault variables.
RESERVED_VARIABLES = {"PORT", "SERVICE_ID", "SERVICE_PATH", "SERVICE_VERSION", "DATABASE_NAME"}
RESERVED_VARIABLES |= {"DATABASE_USER", "DATABASE_PASSWORD", "PATH", "HOME", "HOST"}


class OrderInvalid(ValidationError):
    """The order is refused; `errors` maps each bad field's path to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__({path: list(msgs) for path, msgs in errors.items()})
        self.errors = errors


@dataclass(frozen=True)
class ServiceSpec:
    id: str
    section: str
    path: str
    repository_url: str
    version: str
    type: str
    roles: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderSpec:
    action: str
    environment_id: str
    domains: dict[str, list[str]] = field(default_factory=dict)
    services: list[ServiceSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrderSpec:
        services = [
            ServiceSpec(**{**s, "roles": tuple(s["roles"]), "variables": tuple(s["variables"])})
            for s in data["services"]
        ]
        return cls(
            action=data["action"],
            environment_id=data["environment_id"],
            domains=data["domains"],
            services=services,
        )


# --- Loading ------------------------------------------------------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader (no `!!python` objects) that also refuses aliases, which is how a small document
    expands into billions of nodes, and documents nested deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(
                f"line {mark.line + 1}: aliases (*name) and merge keys are not accepted in an order"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: bytes | str) -> Any:
    """The document as plain data, or OrderInvalid({"order": [...]}) for anything unsafe or broken."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_BYTES:
        raise OrderInvalid({"order": [f"the order is {len(raw)} bytes; at most {MAX_BYTES} are accepted."]})
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OrderInvalid({"order": ["the order must be UTF-8 text."]}) from None
    if not decoded.strip():
        raise OrderInvalid({"order": ["the order is empty."]})
    loader = None
    try:
        # The reader refuses control characters as soon as it is made: inside the try, as a 400.
        loader = _BoundedLoader(decoded)
        return loader.get_single_data()
    except yaml.constructor.ConstructorError as exc:
        where = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark else ""
        raise OrderInvalid({"order": [f"{where}{exc.problem}: only plain YAML is accepted."]}) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise OrderInvalid({"order": [f"not valid YAML: {where}{problem}"]}) from None
    finally:
        if loader is not None:
            loader.dispose()


# --- Validation ---------------------------------------------------------------------------------


class _Errors:
    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_path.setdefault(path, []).append(message)


def _ident(value: Any, path: str, errors: _Errors, what: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        errors.add(path, f"must be a {what}: a string of letters, digits, '-' or '_'.")
        return None
    text = str(value)
    if template_characters(text):
        errors.add(path, template_characters(text))
        return None
    if not IDENT.match(text):
        errors.add(path, f"{text[:80]!r} is not a valid {what}: 1-63 letters, digits, '-' or '_'.")
        return None
    return text


def _unknown_keys(data: dict, allowed: set[str], path: str, errors: _Errors) -> None:
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            errors.add(where, f"unknown key; allowed: {', '.join(sorted(allowed))}.")


def validate_domain(value: Any) -> str | None:
    """An error message for a bad host name, or None."""
    if not isinstance(value, str):
        return "must be a host name."
    if template_characters(value):
        return template_characters(value)
    name = value.lower().rstrip(".")
    if len(name) > 253 or "." not in name:
        return f"{value[:80]!r} is not a fully qualified host name."
    if not all(LABEL.match(label) for label in name.split(".")):
        return f"{value[:80]!r} is not a valid host name: letters, digits and '-' between dots."
    return None


def template_characters(value: str) -> str | None:
    """An error message when `value` holds template or quoting syntax, or None."""
    found = sorted({ch for ch in value if ch in TEMPLATE_CHARACTERS})
    if found:
        return f"must not contain {' '.join(repr(ch) for ch in found)}: order values are data, not templates."
    return None


def validate_repository_url(value: Any) -> str | None:
    """An error message for a repository URL that git must not be pointed at, or None.

    Refused: other transports than the configured schemes (`ext::` runs a command), options in
    disguise (a leading '-'), credentials in the URL, and '..' or encoded traversal in the path."""
    if not isinstance(value, str) or not value:
        return "must be a repository URL."
    if len(value) > 500:
        return "is longer than 500 characters."
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in value) or value.startswith("-"):
        return "must not contain spaces, control characters, backslashes or start with '-'."
    problem = template_characters(value)
    if problem:
        return problem
    schemes = conf.repository_schemes()
    scp = SCP_LIKE.match(value)
    if scp and "://" not in value:
        if "ssh" not in schemes:
            return "ssh repositories are not accepted here."
        path = scp["path"]
    else:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            return f"scheme {parts.scheme or '(none)'!r} is not accepted; use one of: {', '.join(schemes)}."
        if parts.password is not None:
            return "must not carry a password; give the service a deploy key instead."
        if parts.scheme == "file":
            if parts.netloc:
                return "a file:// URL names a local path: file:///path/to/repo."
        elif not parts.hostname:
            return "must name a host."
        if parts.query or parts.fragment:
            return "must not have a query or a fragment."
        path = parts.path
    decoded = unquote(unquote(path))
    if "%" in path or any(seg in ("..", ".") for seg in re.split(r"[/\\]", decoded)):
        return "must not contain '..', '.' or percent-encoded path segments."
    if not decoded.strip("/"):
        return "must name a repository path."
    return None


def validate_service_path(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a URL path starting with '/'."
    if len(value) > 200:
        return "is longer than 200 characters."
    if template_characters(value):
        return template_characters(value)
    if "%" in value or ".." in value or "//" in value or not PATH.match(value.rstrip("/") or "/"):
        return f"{value[:80]!r} is not a clean URL path: '/', or '/' and segments of letters, digits, '.-_~'."
    return None


def _list_of(value: Any, path: str, errors: _Errors, pattern: re.Pattern, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.add(path, f"must be a list of {what}.")
        return ()
    out: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and template_characters(item):
            errors.add(f"{path}[{i}]", template_characters(item))
        elif not isinstance(item, str) or not pattern.match(item):
            errors.add(f"{path}[{i}]", f"{str(item)[:80]!r} is not a valid {what[:-1]}.")
        elif item in out:
            errors.add(f"{path}[{i}]", f"{item!r} is listed twice.")
        else:
            out.append(item)
    return tuple(out)


def _service(data: Any, section: str, path: str, errors: _Errors) -> ServiceSpec | None:
    if not isinstance(data, dict):
        errors.add(path, "must be a mapping with id, path, repository and type.")
        return None
    _unknown_keys(data, SERVICE_KEYS, path, errors)
    for key in ("id", "path", "repository", "type"):
        if key not in data:
            errors.add(f"{path}.{key}", "is required.")
    sid = _ident(data["id"], f"{path}.id", errors, "service id") if "id" in data else None
    spath = None
    if "path" in data:
        problem = validate_service_path(data["path"])
        if problem:
            errors.add(f"{path}.path", problem)
        else:
            spath = data["path"].rstrip("/") or "/"
    url = version = None
    repo = data.get("repository")
    if "repository" in data:
        if not isinstance(repo, dict):
            errors.add(f"{path}.repository", "must be a mapping with url and optional version.")
        else:
            _unknown_keys(repo, REPOSITORY_KEYS, f"{path}.repository", errors)
            if "url" not in repo:
                errors.add(f"{path}.repository.url", "is required.")
            else:
                problem = validate_repository_url(repo["url"])
                if problem:
                    errors.add(f"{path}.repository.url", problem)
                else:
                    url = repo["url"]
            raw_version = repo.get("version", "HEAD")
            if isinstance(raw_version, int | float) and not isinstance(raw_version, bool):
                raw_version = str(raw_version)
            if isinstance(raw_version, str) and template_characters(raw_version):
                errors.add(f"{path}.repository.version", template_characters(raw_version))
            elif not isinstance(raw_version, str) or not VERSION.match(raw_version) or ".." in raw_version:
                errors.add(
                    f"{path}.repository.version",
                    "must be a branch, tag or commit: letters, digits and '._/-', no '..'.",
                )
            else:
                version = raw_version
    stype = None
    if "type" in data:
        value = data["type"]
        if value not in KNOWN_TYPES:
            errors.add(
                f"{path}.type", f"{str(value)[:40]!r} is not a service type; known: {sorted(KNOWN_TYPES)}."
            )
        elif value not in DEPLOYABLE_TYPES:
            errors.add(
                f"{path}.type",
                f"services of type {value!r} cannot be deployed by this service yet (no {value} runtime "
                f"is set up on its hosts); deployable types: {', '.join(sorted(DEPLOYABLE_TYPES))}.",
            )
        else:
            stype = value
    roles = _list_of(data.get("roles"), f"{path}.roles", errors, ROLE, "role names")
    variables = _list_of(data.get("variables"), f"{path}.variables", errors, VARIABLE, "variable names")
    for i, name in enumerate(variables):
        if name in RESERVED_VARIABLES:
            errors.add(f"{path}.variables[{i}]", f"{name} is set by the deploy itself.")
    if None in (sid, spath, url, version, stype):
        return None
    return ServiceSpec(
        id=sid,
        section=section,
        path=spath,
        repository_url=url,
        version=version,
        type=stype,
        roles=roles,
        variables=variables,
    )


def _section(data: Any, name: str, errors: _Errors, spec: dict, seen: dict) -> None:
    if not isinstance(data, dict):
        errors.add(name, "must be a mapping with domains and services.")
        return
    _unknown_keys(data, SECTION_KEYS, name, errors)
    domains = data.get("domains")
    if not isinstance(domains, list) or not domains:
        errors.add(f"{name}.domains", "must be a non-empty list of host names.")
        domains = []
    elif len(domains) > MAX_DOMAINS:
        errors.add(f"{name}.domains", f"at most {MAX_DOMAINS} domains.")
        domains = []
    clean: list[str] = []
    for i, domain in enumerate(domains):
        problem = validate_domain(domain)
        if problem:
            errors.add(f"{name}.domains[{i}]", problem)
            continue
        host = domain.lower().rstrip(".")
        if host in seen["domains"]:
            errors.add(f"{name}.domains[{i}]", f"{host} is already listed at {seen['domains'][host]}.")
            continue
        seen["domains"][host] = f"{name}.domains[{i}]"
        clean.append(host)
    spec["domains"][name] = clean
    services = data.get("services")
    if not isinstance(services, list) or not services:
        errors.add(f"{name}.services", "must be a non-empty list of services.")
        return
    if len(services) > MAX_SERVICES:
        errors.add(f"{name}.services", f"at most {MAX_SERVICES} services.")
        return
    paths: dict[str, str] = {}
    for i, item in enumerate(services):
        path = f"{name}.services[{i}]"
        service = _service(item, name, path, errors)
        if service is None:
            continue
        if service.id in seen["ids"]:
            errors.add(
                f"{path}.id", f"service id {service.id!r} is already used at {seen['ids'][service.id]}."
            )
            continue
        if service.path in paths:
            errors.add(f"{path}.path", f"{service.path} is already served by {paths[service.path]}.")
            continue
        seen["ids"][service.id] = path
        paths[service.path] = path
        spec["services"].append(service)


def parse_order(text: bytes | str) -> OrderSpec:
    """Load and validate an order; raise OrderInvalid naming every bad field."""
    data = load_yaml(text)
    errors = _Errors()
    if not isinstance(data, dict):
        raise OrderInvalid({"order": ["must be a mapping with action, environment_id, api and front."]})
    _unknown_keys(data, TOP_KEYS, "", errors)
    action = data.get("action")
    if action not in OrderAction.values:
        errors.add("action", f"must be one of: {', '.join(OrderAction.values)}.")
    env_id = None
    if "environment_id" not in data:
        errors.add("environment_id", "is required.")
    else:
        env_id = _ident(data["environment_id"], "environment_id", errors, "environment id")
    spec: dict[str, Any] = {"domains": {}, "services": []}
    seen: dict[str, dict[str, str]] = {"domains": {}, "ids": {}}
    sections = [name for name in Section.values if name in data]
    if action == OrderAction.DELETE:
        for name in sections:
            errors.add(name, "a delete order names only the environment; leave out api and front.")
    else:
        for name in sections:
            _section(data[name], name, errors, spec, seen)
        if action == OrderAction.UPDATE and not sections:
            errors.add(
                "order",
                "an update names at least one service in api or front; to tear the "
                "environment down use action: delete.",
            )
    if errors.by_path:
        raise OrderInvalid(errors.by_path)
    return OrderSpec(action=action, environment_id=env_id, domains=spec["domains"], services=spec["services"])


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def locate(text: str, path: str) -> int | None:
    """The 1-based line of the field `path` (`api.services[1].repository.url`) in the order's text,
    or of the nearest mapping above it that exists; None when the text is no YAML mapping. For
    showing each error where it is."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    line = node.start_mark.line + 1
    for key, index in _STEP.findall(path):
        child = None
        if key and isinstance(node, yaml.MappingNode):
            for name, value in node.value:
                if isinstance(name, yaml.ScalarNode) and name.value == key:
                    child, line = value, name.start_mark.line + 1
                    break
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            child = node.value[int(index)]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
