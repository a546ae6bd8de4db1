"""Settings of application requests: a Django setting of the same name first (tests override there),
then the environment (read with the strict helpers of provisioning.env), then the embedded default.
Read when used, so that an override applies at once."""

from django.conf import settings

from provisioning.env import env_bool, env_int, env_list


def _get(name: str, read, default, **bounds):
    if hasattr(settings, name):
        return getattr(settings, name)
    return read(name, default, **bounds)


def decision_timeout() -> int:
    """Seconds an authorizer has to decide when the request names no time limit of its own."""
    return int(_get("APPLICATIONS_DECISION_TIMEOUT", env_int, 120, minimum=1, maximum=7 * 24 * 3600))


def decision_timeout_bounds() -> tuple[int, int]:
    """The shortest and longest time limit a request may ask for."""
    low = int(_get("APPLICATIONS_DECISION_TIMEOUT_MIN", env_int, 1, minimum=1))
    high = int(_get("APPLICATIONS_DECISION_TIMEOUT_MAX", env_int, 24 * 3600, minimum=1))
    return low, max(low, high)


def profiles() -> list[str]:
    """The profiles an authorizer may choose (AWS CLI profiles on the workers, or labels)."""
    return list(_get("APPLICATIONS_PROFILES", env_list, ["default", "sandbox", "production"]))


def fault_injection_enabled() -> bool:
    """Whether a request may ask for a provider call to fail (`inject_fault`): for tests and drills."""
    return bool(_get("APPLICATIONS_FAULT_INJECTION", env_bool, False))
