"""The one interface every cloud provider implements, and the plain data it takes and returns.

A provider is a plain adapter: no Django models, no Celery. Steps of a saga call it with plain data
(ids, names, dicts) and persist what it returns. Every call that creates something is idempotent:
images by build reference, key pairs by fingerprint, instances by client token.
"""

from __future__ import annotations

import base64
import hashlib
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# Tags every launched instance carries, so that a launch can be found again (after a crash, for
# compensation) by its reservation or its client token even when our database never heard of it.
TAG_RESERVATION = "provisioning:reservation"
TAG_CUSTOMER = "provisioning:customer"
TAG_TOKEN = "provisioning:launch-token"
TAG_BUILD = "provisioning:build"


class ProviderError(Exception):
    """The provider refused or failed a call. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code


class InjectedFault(ProviderError):
    """A failure asked for on purpose (the `inject_fault` launch option), to prove compensation."""


class BuildState:
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class InstanceState:
    PENDING = "pending"  # asked for, not serving yet
    RUNNING = "running"
    STOPPED = "stopped"  # the process or machine is gone without being terminated
    TERMINATED = "terminated"

    LIVE = frozenset({PENDING, RUNNING, STOPPED})


@dataclass(frozen=True)
class BuildStatus:
    state: str
    image_id: str
    message: str = ""


@dataclass(frozen=True)
class KeyPair:
    name: str  # the provider's name for the key, passed to launch
    fingerprint: str  # the provider's fingerprint of it
    imported: bool  # False: it was already there and is reused


@dataclass(frozen=True)
class Instance:
    id: str
    region: str
    state: str
    image_id: str = ""
    instance_type: str = ""
    key_name: str = ""
    private_ip: str = ""
    public_ip: str = ""
    dns_name: str = ""
    port: int | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        """What a reservation shows of the instance (everything but the id and region)."""
        data = asdict(self)
        for key in ("id", "region", "tags"):
            data.pop(key)
        return data


@dataclass(frozen=True)
class LaunchRequest:
    """Everything `launch_instances` needs; `client_token` makes a repeated call return the same
    instances instead of starting more."""

    region: str
    image_id: str
    count: int
    instance_type: str
    key_name: str
    client_token: str
    tags: dict[str, str]


class Provider(ABC):
    """One cloud (or the local host). Construct it with the account it acts as (plain data)."""

    name: str = ""
    title: str = ""
    instance_types: tuple[str, ...] = ()
    default_instance_type: str = ""

    def __init__(self, account: dict[str, Any] | None = None, *, fault: str = "") -> None:
        self.account = dict(account or {})
        # The name of one method that fails on every call (see InjectedFault); empty: none.
        self.fault = fault

    def _call(self, method: str) -> None:
        if self.fault and self.fault == method:
            raise InjectedFault(f"{self.name}: {method} failed (a fault injected on purpose)", retryable=True)

    # --- what the provider accepts ---------------------------------------------------------------

    @abstractmethod
    def regions(self) -> list[str]:
        """Every region this provider launches into."""

    architectures: tuple[str, ...] = ("x86_64", "aarch64")
    # The most bytes of cloud-config the provider hands a machine (EC2's user data); None: no limit.
    user_data_limit: int | None = None

    def validate_manifest(self, manifest: dict) -> dict[str, list[str]]:
        """What this provider cannot build or launch of a manifest, as errors keyed by field path
        (`target.regions[1]`, `architecture`)."""
        errors: dict[str, list[str]] = {}
        if manifest.get("architecture") not in self.architectures:
            errors["architecture"] = [f"{self.name} builds for {', '.join(self.architectures)} only."]
        known = self.regions()
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        for i, region in enumerate(manifest.get("target", {}).get("regions", [])):
            if region not in known:
                errors[f"target.regions[{i}]"] = [f"{self.name} has no region '{region}': one of {shown}."]
        return errors

    # --- images ----------------------------------------------------------------------------------

    @abstractmethod
    def start_build(self, *, region: str, build_ref: str, name: str, manifest: dict) -> str:
        """Start building the image of `manifest` in `region`; return its image id. Calling it again
        with the same `build_ref` returns the same image."""

    @abstractmethod
    def describe_build(self, *, region: str, image_id: str) -> BuildStatus:
        """Whether the image is ready, still building, or failed (with why)."""

    @abstractmethod
    def delete_image(self, *, region: str, image_id: str) -> None:
        """Remove the image; an image that is gone already is no error."""

    # --- keys ------------------------------------------------------------------------------------

    @abstractmethod
    def ensure_public_key(self, *, region: str, name: str, public_key: str) -> KeyPair:
        """Look the key up by fingerprint and reuse it; import it as `name` only if it is not there."""

    # --- instances -------------------------------------------------------------------------------

    @abstractmethod
    def check_launch(self, request: LaunchRequest) -> None:
        """Ask the provider whether the launch would be allowed (a dry run); raise ProviderError if not."""

    @abstractmethod
    def launch_instances(self, request: LaunchRequest) -> list[Instance]:
        """Launch `count` instances, or return the ones an earlier call with the same client token
        launched (never a second set)."""

    @abstractmethod
    def find_instances(self, *, region: str, tags: dict[str, str]) -> list[Instance]:
        """Every instance not yet terminated that carries all `tags`, those still starting included."""

    @abstractmethod
    def describe_instances(self, *, region: str, instance_ids: list[str]) -> list[Instance]:
        """The current description (state, addresses) of the given instances."""

    @abstractmethod
    def terminate_instances(self, *, region: str, instance_ids: list[str]) -> None:
        """Terminate them; ids that are gone already are no error."""

    def wait_terminated(self, *, region: str, tags: dict[str, str], timeout: float = 30.0) -> bool:
        """Poll until no instance carrying `tags` is live any more (terminated ones are not found)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.find_instances(region=region, tags=tags):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


# --- Public keys ---------------------------------------------------------------------------------


def parse_public_key(text: str):
    """Parse an OpenSSH public key line (RSA or Ed25519). Raises ValueError with a reason."""
    text = (text or "").strip()
    if not text:
        raise ValueError("is empty.")
    if "PRIVATE KEY" in text:
        raise ValueError("is a private key: send only the public key (the .pub file); never a private one.")
    # One line, no control characters: a key goes into authorized_keys as one line, and a line break
    # in its comment would add a line (another key, options) of the sender's choosing.
    if len(text.splitlines()) > 1 or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("must be one line (a line break or control character was found in it).")
    try:
        key = serialization.load_ssh_public_key(text.encode())
    except UnsupportedAlgorithm:
        raise ValueError("must be an ssh-rsa or ssh-ed25519 key.") from None
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"is not an OpenSSH public key ({exc}).") from None
    if not isinstance(key, RSAPublicKey | Ed25519PublicKey):
        raise ValueError("must be an ssh-rsa or ssh-ed25519 key.")
    if isinstance(key, RSAPublicKey) and key.key_size < 2048:
        raise ValueError(f"is an RSA key of {key.key_size} bits: use at least 2048.")
    return key


def key_type(text: str) -> str:
    return "ed25519" if isinstance(parse_public_key(text), Ed25519PublicKey) else "rsa"


def openssh_fingerprint(text: str) -> str:
    """The SHA256 fingerprint `ssh-keygen -l` shows: SHA256:<base64 without padding>."""
    blob = base64.b64decode(text.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def aws_fingerprints(text: str) -> list[str]:
    """The fingerprints EC2 may show for an imported key: MD5 of the DER public key for RSA; SHA256
    of it for Ed25519 (base64 as EC2 documents it, and hex as some implementations show it)."""
    key = parse_public_key(text)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def colons(digest: bytes) -> str:
        return ":".join(f"{b:02x}" for b in digest)

    if isinstance(key, RSAPublicKey):
        return [colons(hashlib.md5(der, usedforsecurity=False).digest())]
    blob = base64.b64decode(text.split()[1])
    return [
        base64.b64encode(hashlib.sha256(blob).digest()).decode(),
        colons(hashlib.sha256(der).digest()),
    ]
