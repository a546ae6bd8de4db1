"""Strict readers for settings that come from the environment.

A typo in an operator's environment must stop the service at start-up with a message that names the
variable, not run it quietly with a default nobody asked for.
"""

import os
from ipaddress import IPv4Network, IPv6Network, ip_network

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of true/false, yes/no, on/off, 1/0."
    )


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name}={value} is outside {minimum}..{maximum}.")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below {minimum}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_hostports(name: str) -> list[tuple[str, int]]:
    """`host:port` pairs, comma-separated (`DNS_NAMESERVERS=127.0.0.1:5353,10.0.0.2:53`)."""
    pairs = []
    for item in env_list(name):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ImproperlyConfigured(f"{name}: {item!r} is not host:port.")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def env_rate(name: str, default: str) -> tuple[int, int] | None:
    """A rate `count/period` (`30/minute`, `100/hour`, `5/10s`), or None for `off` (or a count of 0).
    The period is second, minute, hour, day (or their first letter), or a number of seconds with `s`."""
    raw = os.environ.get(name)
    text = (default if raw is None or raw.strip() == "" else raw).strip().lower()
    if text in ("off", "0"):
        return None
    count, sep, period = text.partition("/")
    seconds = None
    if period.endswith("s") and period[:-1].isdigit():
        seconds = int(period[:-1])
    else:
        seconds = next((s for p, s in _PERIODS.items() if period in (p, p[0])), None)
    if not sep or not count.isdigit() or not seconds:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate: write count/period (30/minute, 100/hour, 5/10s) or off."
        )
    return (int(count), seconds) if int(count) > 0 else None


def env_port_range(name: str, default: tuple[int, int]) -> tuple[int, int]:
    """A range of TCP ports `LOW-HIGH` (`21000-21999`), both unprivileged."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    low, sep, high = raw.strip().partition("-")
    low, high = low.strip(), high.strip()
    if not (sep and low.isdigit() and high.isdigit() and 1024 <= int(low) <= int(high) <= 65535):
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a range of ports: write LOW-HIGH within 1024-65535 (21000-21999)."
        )
    return int(low), int(high)


def env_choice(name: str, default: str, choices: list[str]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} is not one of {', '.join(choices)}.")
    return value


def env_networks(name: str, default: list[str]) -> list[IPv4Network | IPv6Network]:
    """IP networks, comma-separated (`METRICS_ALLOWED_NETWORKS=127.0.0.1/32,10.0.0.0/8`)."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP network (10.0.0.0/8).") from None
    return networks
