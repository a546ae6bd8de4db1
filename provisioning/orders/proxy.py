"""Proxy routes: one nginx site file per environment, validated with `nginx -t` before it replaces the
old one, then a reload. No Django models here: plain data in, files and nginx calls out.

The nginx instance is named by its prefix (conf.nginx_prefix()): nginx.conf there includes sites/*.conf.
A candidate is tested in a staging copy of the sites folder, so a broken render never reaches the live
configuration, and a lock keeps two environments' updates from interleaving.
"""

from __future__ import annotations

import fcntl
import http.client
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provisioning.orders import conf

ROUTE_HEADER = "X-Orders-Service"


class ProxyError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Route:
    service_id: str
    domains: tuple[str, ...]
    path: str
    port: int
    address: str = "127.0.0.1"  # the host the service runs on (a registered host's address)


def main_config(prefix: Path, sites: Path) -> str:
    """The instance's nginx.conf; every path in it lives under `prefix`."""
    return f"""# Written by provisioning.orders: environment sites are included from {sites}.
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server_names_hash_bucket_size 128;
    include {sites}/*.conf;
}}
"""


def ensure_layout(prefix: Path | None = None) -> Path:
    """Create the instance's folders and nginx.conf if they are missing; answer the conf's path."""
    prefix = prefix or conf.nginx_prefix()
    for sub in ("logs", "tmp", "sites", "staging"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    main = prefix / "nginx.conf"
    if not main.exists():
        main.write_text(main_config(prefix, prefix / "sites"))
    default = prefix / "sites" / "000-default.conf"
    if not default.exists():
        # Unknown hosts get a plain 404, and the port listens before any environment has routes.
        default.write_text(
            f"server {{\n    listen {conf.proxy_listen()} default_server;\n    return 404;\n}}\n"
        )
    return main


def site_path(environment: str) -> Path:
    return conf.nginx_prefix() / "sites" / f"env-{environment}.conf"


def _upstream(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _location(route: Route) -> str:
    body = (
        f"        proxy_pass http://{_upstream(route.address)}:{route.port};\n"
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "        proxy_set_header X-Forwarded-Proto $scheme;\n"
        f"        proxy_set_header X-Forwarded-Prefix {route.path};\n"
        f"        add_header {ROUTE_HEADER} {route.service_id} always;\n"
    )
    if route.path == "/":
        return f"    location / {{\n{body}    }}\n"
    # Exact match and sub-paths only: /core must not also catch /corefoo.
    return f"    location = {route.path} {{\n{body}    }}\n    location {route.path}/ {{\n{body}    }}\n"


def render_site(environment: str, routes: list[Route], listen: str | None = None) -> str:
    """Server blocks for the environment: one per set of domains, one location per service path.
    Domains and paths were validated by the order spec (host names, clean paths): nothing here needs
    escaping."""
    listen = listen or conf.proxy_listen()
    by_domains: dict[tuple[str, ...], list[Route]] = {}
    for route in sorted(routes, key=lambda r: (r.domains, r.path)):
        by_domains.setdefault(route.domains, []).append(route)
    out = [f"# Environment {environment}: written by provisioning.orders, do not edit.\n"]
    for domains, group in by_domains.items():
        out.append(f"server {{\n    listen {listen};\n    server_name {' '.join(domains)};\n")
        out.extend(_location(route) for route in group)
        if all(route.path != "/" for route in group):
            # Paths no service claims: a plain 404, never a file from nginx's own root.
            out.append("    location / {\n        return 404;\n    }\n")
        out.append("}\n")
    return "".join(out)


@contextmanager
def _locked(prefix: Path) -> Iterator[None]:
    with open(prefix / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _nginx(*args: str, prefix: Path) -> subprocess.CompletedProcess:
    binary = conf.nginx_binary()
    try:
        return subprocess.run(
            [binary, "-p", str(prefix), "-e", str(prefix / "logs" / "error.log"), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError as exc:
        raise ProxyError(
            f"the program nginx is not installed on this machine ({binary} not found): install it "
            "(Debian: apt-get install nginx) or set ORDERS_NGINX_BINARY, start the service again, "
            "then retry the order."
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ProxyError(
            f"nginx did not answer within {exc.timeout:.0f} s: see {prefix}/logs/error.log."
        ) from exc


def current_site(environment: str) -> str | None:
    path = site_path(environment)
    return path.read_text() if path.exists() else None


def apply_site(environment: str, content: str | None) -> bool:
    """Make the environment's site file `content` (None: remove it), test, reload. Answers whether
    anything changed; raises ProxyError (with nginx's words) when the candidate does not pass."""
    prefix = conf.nginx_prefix()
    ensure_layout(prefix)
    target = site_path(environment)
    with _locked(prefix):
        if (target.read_text() if target.exists() else None) == content:
            return False
        staging = Path(tempfile.mkdtemp(prefix="test-", dir=prefix / "staging"))
        try:
            sites = staging / "sites"
            sites.mkdir()
            for existing in (prefix / "sites").glob("*.conf"):
                if existing.name != target.name:
                    shutil.copy2(existing, sites / existing.name)
            if content is not None:
                (sites / target.name).write_text(content)
            test_conf = staging / "nginx.conf"
            test_conf.write_text(main_config(prefix, sites))
            tested = _nginx("-t", "-c", str(test_conf), prefix=prefix)
            if tested.returncode != 0:
                raise ProxyError(f"nginx refused the new routes: {tested.stderr.strip()[-800:]}")
            if content is None:
                target.unlink(missing_ok=True)
            else:
                tmp = target.with_suffix(".conf.new")
                tmp.write_text(content)
                os.replace(tmp, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        reload()
    return True


def reload() -> None:
    prefix = conf.nginx_prefix()
    if not (prefix / "nginx.pid").exists():
        raise ProxyError(f"nginx is not running with prefix {prefix}: start it, then retry the order.")
    done = _nginx("-c", str(prefix / "nginx.conf"), "-s", "reload", prefix=prefix)
    if done.returncode != 0:
        raise ProxyError(f"nginx did not reload: {done.stderr.strip()[-800:]}")


def request(
    domain: str, path: str, listen: str | None = None, timeout: float = 3.0
) -> tuple[int, dict, bytes]:
    """GET `path` through the proxy as `domain` would be asked."""
    host, _, port = (listen or conf.proxy_listen()).rpartition(":")
    conn = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": domain})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def check_routes(routes: list[Route], timeout: float = 15.0) -> list[str]:
    """Problems left after waiting for every route to reach its service (the reload is asynchronous:
    old workers answer with the old routes for a moment)."""
    deadline = time.monotonic() + timeout
    pending = {(route, domain) for route in routes for domain in route.domains}
    problems: dict[tuple[Route, str], str] = {}
    while pending and time.monotonic() < deadline:
        for route, domain in sorted(pending, key=lambda x: (x[1], x[0].path)):
            try:
                status, headers, _ = request(domain, route.path)
            except OSError as exc:
                problems[(route, domain)] = f"{domain}{route.path}: {exc}"
                continue
            if headers.get(ROUTE_HEADER) == route.service_id and status < 500:
                pending.discard((route, domain))
                problems.pop((route, domain), None)
            else:
                problems[(route, domain)] = f"{domain}{route.path}: answered {status}"
        if pending:
            time.sleep(0.3)
    return [problems.get(key, f"{key[1]}{key[0].path}: no answer") for key in pending]
