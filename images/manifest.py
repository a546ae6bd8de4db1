"""The build manifest and the launch details: validated up front, every problem at once, each under
the path of the field it concerns (`manifest.customizations.users[0].ssh_key`), so that a request that
would fail later is refused before anything is stored or started."""

from __future__ import annotations

import re
from typing import Any

from provisioning.providers import PROVIDER_NAMES, cloud_config, provider_class
from provisioning.providers.base import parse_public_key

Errors = dict[str, list[str]]

DISTRIBUTIONS = ("rhel-9", "rhel-10", "centos-9", "fedora-41", "debian-12", "ubuntu-24.04")
ARCHITECTURES = ("x86_64", "aarch64")
MAX_REGIONS = 4
MAX_INSTANCES = 20
_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_GROUP = _USER
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._-]{0,127}")
_PATH = re.compile(r"/[A-Za-z0-9._/-]{1,254}")
_MODE = re.compile(r"0?[0-7]{3}")
_RESERVED_USERS = {"root", "bin", "daemon", "nobody"}

MANIFEST_KEYS = {"distribution", "architecture", "packages", "customizations", "target"}
CUSTOMIZATION_KEYS = {"users", "files", "services"}
LAUNCH_KEYS = {
    "account",
    "amount",
    "instance_type",
    "pubkey",
    "public_key",
    "one_off_image",
    "inject_fault",
}


class _Check:
    def __init__(self) -> None:
        self.errors: Errors = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def unknown(self, path: str, value: dict, known: set[str]) -> None:
        for key in sorted(set(value) - known):
            self.add(f"{path}.{key}", f"is not a field here: one of {', '.join(sorted(known))}.")

    def object(self, path: str, value: Any, required: bool = True) -> dict | None:
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            self.add(path, "must be an object." if value is not None else "This field is required.")
            return None
        return value

    def names(self, path: str, value: Any, pattern: re.Pattern, what: str, maximum: int) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(path, f"must be a list of {what}s.")
            return []
        if len(value) > maximum:
            self.add(path, f"must have at most {maximum} entries.")
        for i, item in enumerate(value):
            if not pattern.fullmatch(item):
                self.add(f"{path}[{i}]", f"'{item[:60]}' is not a valid {what}.")
        if len(set(value)) != len(value):
            self.add(path, f"names a {what} twice.")
        return value


def validate_manifest(data: Any) -> tuple[dict, Errors]:
    """Check a build manifest; return it normalized (defaults filled in) and every error found."""
    check = _Check()
    manifest = check.object("manifest", data)
    if manifest is None:
        return {}, check.errors
    check.unknown("manifest", manifest, MANIFEST_KEYS)
    clean: dict[str, Any] = {}

    distribution = manifest.get("distribution")
    if distribution not in DISTRIBUTIONS:
        check.add(
            "manifest.distribution",
            "This field is required."
            if distribution is None
            else f"'{distribution}' is not a distribution we build: one of {', '.join(DISTRIBUTIONS)}.",
        )
    clean["distribution"] = distribution
    architecture = manifest.get("architecture", "x86_64")
    if architecture not in ARCHITECTURES:
        check.add("manifest.architecture", f"must be one of {', '.join(ARCHITECTURES)}.")
    clean["architecture"] = architecture
    clean["packages"] = check.names(
        "manifest.packages", manifest.get("packages", []), _PACKAGE, "package name", 500
    )

    custom = check.object("manifest.customizations", manifest.get("customizations", {})) or {}
    check.unknown("manifest.customizations", custom, CUSTOMIZATION_KEYS)
    clean["customizations"] = {
        "users": _users(check, custom.get("users", [])),
        "files": _files(check, custom.get("files", [])),
        "services": _services(check, custom.get("services", {})),
    }

    target = check.object("manifest.target", manifest.get("target"))
    if target is not None:
        check.unknown("manifest.target", target, {"provider", "regions"})
        provider = target.get("provider")
        regions = target.get("regions")
        if provider not in PROVIDER_NAMES:
            check.add("manifest.target.provider", f"must be one of {', '.join(PROVIDER_NAMES)}.")
        if not isinstance(regions, list) or not regions or not all(isinstance(r, str) for r in regions):
            check.add("manifest.target.regions", "must be a list of at least one region name.")
        elif len(regions) > MAX_REGIONS:
            check.add("manifest.target.regions", f"must name at most {MAX_REGIONS} regions.")
        elif len(set(regions)) != len(regions):
            check.add("manifest.target.regions", "names a region twice.")
        clean["target"] = {"provider": provider, "regions": regions}
        if provider in PROVIDER_NAMES and not check.errors.get("manifest.target.regions"):
            for path, messages in provider_class(provider)(None).validate_manifest(clean).items():
                for message in messages:
                    check.add(f"manifest.{path}", message)
    if not check.errors:
        # Only a manifest that is right field by field makes a cloud-config worth checking.
        found = cloud_config.problems(clean)
        limit = provider_class(clean["target"]["provider"]).user_data_limit
        if not found and limit:
            found = cloud_config.user_data_problems(clean, limit=limit)
        for path, messages in found.items():
            for message in messages:
                check.add(f"manifest.{path}", message)
    return clean, check.errors


def _users(check: _Check, users: Any) -> list[dict]:
    if not isinstance(users, list):
        check.add("manifest.customizations.users", "must be a list of users.")
        return []
    clean = []
    for i, user in enumerate(users):
        path = f"manifest.customizations.users[{i}]"
        if check.object(path, user) is None:
            continue
        check.unknown(path, user, {"name", "ssh_key", "groups"})
        name = user.get("name")
        if not isinstance(name, str) or not _USER.fullmatch(name):
            check.add(f"{path}.name", "must be a user name: lower-case letters, digits, _ and -, at most 32.")
        elif name in _RESERVED_USERS:
            check.add(f"{path}.name", f"'{name}' is a system user.")
        key = user.get("ssh_key", "")
        if key:
            try:
                parse_public_key(key if isinstance(key, str) else "")
            except ValueError as exc:
                check.add(f"{path}.ssh_key", str(exc))
        groups = check.names(f"{path}.groups", user.get("groups", []), _GROUP, "group name", 32)
        clean.append({"name": name, "ssh_key": (key or "").strip(), "groups": groups})
    names = [u["name"] for u in clean]
    if len(set(names)) != len(names):
        check.add("manifest.customizations.users", "names a user twice.")
    return clean


def _files(check: _Check, files: Any) -> list[dict]:
    if not isinstance(files, list):
        check.add("manifest.customizations.files", "must be a list of files.")
        return []
    clean = []
    for i, item in enumerate(files):
        path = f"manifest.customizations.files[{i}]"
        if check.object(path, item) is None:
            continue
        check.unknown(path, item, {"path", "content", "mode"})
        file_path = item.get("path")
        if not isinstance(file_path, str) or not _PATH.fullmatch(file_path) or "/../" in f"{file_path}/":
            check.add(f"{path}.path", "must be an absolute path without '..'.")
        content = item.get("content", "")
        if not isinstance(content, str):
            check.add(f"{path}.content", "must be text.")
        elif len(content) > 65536:
            check.add(f"{path}.content", "must be at most 64 KiB.")
        mode = item.get("mode", "0644")
        if not isinstance(mode, str) or not _MODE.fullmatch(mode):
            check.add(f"{path}.mode", "must be an octal mode such as 0644.")
        clean.append({"path": file_path, "content": content, "mode": mode})
    return clean


def _services(check: _Check, services: Any) -> dict:
    path = "manifest.customizations.services"
    if check.object(path, services) is None:
        return {"enabled": [], "disabled": []}
    check.unknown(path, services, {"enabled", "disabled"})
    enabled = check.names(f"{path}.enabled", services.get("enabled", []), _SERVICE, "service name", 100)
    disabled = check.names(f"{path}.disabled", services.get("disabled", []), _SERVICE, "service name", 100)
    both = sorted(set(enabled) & set(disabled))
    if both:
        check.add(path, f"{', '.join(both)} cannot be enabled and disabled at once.")
    return {"enabled": enabled, "disabled": disabled}


def validate_launch(data: Any, *, provider: str | None, regions: list[str]) -> tuple[dict, Errors]:
    """Check the launch details against the provider the manifest targets."""
    check = _Check()
    launch = check.object("launch", data)
    if launch is None:
        return {}, check.errors
    check.unknown("launch", launch, LAUNCH_KEYS)
    clean: dict[str, Any] = {}
    amount = launch.get("amount", 1)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_INSTANCES:
        check.add("launch.amount", f"must be a whole number from 1 to {MAX_INSTANCES}.")
    elif regions and amount < len(regions):
        check.add("launch.amount", f"must be at least the number of regions ({len(regions)}).")
    clean["amount"] = amount
    instance_type = launch.get("instance_type") or ""
    if provider in PROVIDER_NAMES:
        cls = provider_class(provider)
        instance_type = instance_type or cls.default_instance_type
        if instance_type not in cls.instance_types:
            check.add("launch.instance_type", f"must be one of {', '.join(cls.instance_types)}.")
    clean["instance_type"] = instance_type
    public_key = launch.get("public_key")
    if public_key is not None:
        try:
            parse_public_key(public_key if isinstance(public_key, str) else "")
        except ValueError as exc:
            check.add("launch.public_key", str(exc))
    if launch.get("pubkey") is not None and public_key is not None:
        check.add("launch.public_key", "name a stored key (pubkey) or send one (public_key), not both.")
    clean["public_key"] = public_key
    clean["pubkey"] = launch.get("pubkey")
    clean["account"] = launch.get("account")
    one_off = launch.get("one_off_image", False)
    if not isinstance(one_off, bool):
        check.add("launch.one_off_image", "must be true or false.")
    clean["one_off_image"] = one_off
    fault = launch.get("inject_fault", "")
    if fault:
        from images.conf import fault_injection_enabled

        if not fault_injection_enabled():
            check.add(
                "launch.inject_fault", "fault injection is off on this service (IMAGES_FAULT_INJECTION)."
            )
        elif fault not in FAULTS:
            check.add("launch.inject_fault", f"must be one of {', '.join(FAULTS)}.")
    clean["inject_fault"] = fault or ""
    return clean, check.errors


# Provider calls a launch may ask to fail on every attempt (with IMAGES_FAULT_INJECTION on), to prove
# that the saga cleans up: e.g. "describe_instances" fails the last step, "fetch instance descriptions".
FAULTS = (
    "start_build",
    "describe_build",
    "ensure_public_key",
    "check_launch",
    "launch_instances",
    "describe_instances",
)


def spread(amount: int, regions: list[str]) -> dict[str, int]:
    """`amount` instances over the regions, as evenly as can be, the first regions taking the rest."""
    base, rest = divmod(amount, len(regions))
    return {region: base + (1 if i < rest else 0) for i, region in enumerate(regions)}
