"""Cloud providers: plain adapters over a cloud or the local host (no Django models, no Celery).

`get_provider(name, account)` returns one; see `base.Provider` for the interface every provider
implements. Each provider's saga steps run on the Celery queue of the same name.
"""

from __future__ import annotations

from typing import Any

from provisioning.providers.base import (
    BuildState,
    BuildStatus,
    InjectedFault,
    Instance,
    InstanceState,
    KeyPair,
    LaunchRequest,
    Provider,
    ProviderError,
)

PROVIDER_NAMES = ("local", "aws")


def provider_class(name: str) -> type[Provider]:
    if name == "local":
        from provisioning.providers.local import LocalProvider

        return LocalProvider
    if name == "aws":
        from provisioning.providers.aws import AwsProvider

        return AwsProvider
    raise LookupError(f"there is no provider {name!r}: one of {', '.join(PROVIDER_NAMES)}")


def get_provider(name: str, account: dict[str, Any] | None = None, *, fault: str = "") -> Provider:
    """The provider `name` acting as `account`; `fault` names a method that fails on every call."""
    return provider_class(name)(account, fault=fault)


__all__ = [
    "PROVIDER_NAMES",
    "BuildState",
    "BuildStatus",
    "InjectedFault",
    "Instance",
    "InstanceState",
    "KeyPair",
    "LaunchRequest",
    "Provider",
    "ProviderError",
    "get_provider",
    "provider_class",
]
