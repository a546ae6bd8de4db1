"""Settings of the images app: Django settings first (tests override there), then the environment,
then the embedded default. Read when used, so that a test's override applies at once."""

from django.conf import settings

from provisioning.env import env_bool, env_float, env_int


def _get(name: str, read, default):
    return getattr(settings, name) if hasattr(settings, name) else read(name, default)


def pending_reservations_limit() -> int:
    """How many unfinished reservations a customer may have per provider (more answer 429)."""
    return int(_get("IMAGES_PENDING_RESERVATIONS_LIMIT", env_int, 5))


def build_timeout() -> float:
    """Seconds a build may take before the saga gives up and cleans up."""
    return float(_get("IMAGES_BUILD_TIMEOUT", env_float, 3600.0))


def launch_timeout() -> float:
    """Seconds launched instances may take to run before the saga gives up and cleans up."""
    return float(_get("IMAGES_LAUNCH_TIMEOUT", env_float, 900.0))


def poll_interval() -> float:
    """First interval between two looks at a build (doubling up to 30 s)."""
    return float(_get("IMAGES_POLL_INTERVAL", env_float, 2.0))


def fault_injection_enabled() -> bool:
    """Whether a launch may ask for a provider call to fail (`inject_fault`): for tests and drills."""
    return bool(_get("IMAGES_FAULT_INJECTION", env_bool, False))


def stop_local_instances_on_shutdown() -> bool:
    """Whether a worker that shuts down stops every local-provider instance, and the next worker to
    start starts them again (the embedded service's instances run while the service runs)."""
    return bool(_get("LOCAL_PROVIDER_STOP_ON_SHUTDOWN", env_bool, True))
