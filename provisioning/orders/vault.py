"""The vault: generated secrets per service, encrypted at rest with Fernet.

The key is ORDERS_VAULT_KEY (a Fernet key) when set, else derived from SECRET_KEY with HKDF-SHA256 under
a label of its own, so that the vault key is never the session-signing key itself. Values only leave
this module decrypted on their way into a deploy's environment; nothing here logs them.
"""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from provisioning.orders import conf

# The variables every service gets; names listed in the order's `variables` come on top.
STANDARD_VARIABLES = ("DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD")


@lru_cache(maxsize=4)
def _fernet(key: str, secret_key: str) -> Fernet:
    if key:
        return Fernet(key.encode())
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"provisioning.orders.vault.v1"
    ).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def fernet() -> Fernet:
    return _fernet(conf.vault_key(), settings.SECRET_KEY)


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode()).decode()


def generate(name: str, *, environment: str, service_id: str) -> str:
    """A new value for `name`: database names and users are readable, everything else random."""
    suffix = secrets.token_hex(4)
    base = f"{environment}_{service_id}".lower().replace("-", "_")
    if name == "DATABASE_NAME":
        return f"db_{base}_{suffix}"
    if name == "DATABASE_USER":
        return f"u_{base}_{suffix}"
    return secrets.token_urlsafe(32)
