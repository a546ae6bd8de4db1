"""Where environment orders put things on the local host, and how they reach nginx.

Each value is a Django setting of the same name when one is set, else an environment variable, else a
default under DATA_DIR, so that the service runs on a fresh machine and tests can point it at their own
nginx instance (the worker gets the same environment).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.conf import settings


def _value(name: str, default: str) -> str:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    return str(value)


def orders_dir() -> Path:
    return Path(_value("ORDERS_DIR", str(settings.DATA_DIR / "orders")))


def environments_dir() -> Path:
    """Working folders of the services on the local target: <environment>/<service id>/. Outside
    DATA_DIR: the services' own users must reach their folders, and nothing of DATA_DIR."""
    return Path(_value("ORDERS_LOCAL_ROOT", "/var/lib/provisioning-services"))


def local_user_prefix() -> str:
    """Names of the system users the local target runs services as start with it."""
    return _value("ORDERS_LOCAL_USER_PREFIX", "pvs-")


def runs_dir() -> Path:
    """One ansible run folder per operation and service, removed when the run ends."""
    return orders_dir() / "runs"


def repository_schemes() -> list[str]:
    # file:// is for tests and for operators who mirror repositories on the host.
    return [s.strip() for s in _value("ORDERS_REPOSITORY_SCHEMES", "https,ssh").split(",") if s.strip()]


def port_range() -> tuple[int, int]:
    """ORDERS_PORT_RANGE, read strictly with the settings (provisioning.env.env_port_range)."""
    low, high = settings.ORDERS_PORT_RANGE
    return int(low), int(high)


def nginx_binary() -> str:
    return _value("ORDERS_NGINX_BINARY", shutil.which("nginx") or "/usr/sbin/nginx")


def nginx_prefix() -> Path:
    """The nginx instance the routes go to: its prefix holds nginx.conf, sites/ and the pid file."""
    return Path(_value("ORDERS_NGINX_PREFIX", str(orders_dir() / "nginx")))


def proxy_listen() -> str:
    """The address the environment's server blocks listen on (host:port)."""
    return _value("ORDERS_PROXY_LISTEN", "127.0.0.1:8080")


def vault_key() -> str:
    """A Fernet key of its own (ORDERS_VAULT_KEY), or '' to derive one from SECRET_KEY."""
    return _value("ORDERS_VAULT_KEY", "")
