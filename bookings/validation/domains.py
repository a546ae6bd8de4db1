"""Domain names: syntax, public suffixes and the ownership verification code.

The public suffix list comes from tldextract's bundled snapshot: no network at start-up or in a
request, so the answer never depends on whether the PSL server is reachable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import lru_cache

import tldextract

# 32 symbols: A-Z and 2-9 without I, O, 0 and 1, which people confuse when they copy a code.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 40
CODE_GROUP = 4
VERIFICATION_CODE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9-]{6,98}[A-Za-z0-9]"
TXT_PREFIX = "domain-setup-verification-code="

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


@lru_cache(maxsize=1)
def _extract() -> tldextract.TLDExtract:
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def generate_verification_code() -> str:
    """40 symbols from CODE_ALPHABET, grouped by 4 with dashes: `ABCD-EFGH-...` (49 characters)."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_LENGTH, CODE_GROUP))


def bound_verification_code(*, customer_id: int, domain: str, secret: bytes) -> str:
    """The code a customer's TXT record must carry for `domain`: an HMAC of the customer and the domain
    under a secret of the service, so that a value somebody copied from another customer's zone
    proves nothing (the record is public; the code of another customer never equals it)."""
    message = f"domain-setup:{customer_id}:{normalize(domain)}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    number = int.from_bytes(digest, "big")
    raw = ""
    for _ in range(CODE_LENGTH):  # 40 symbols of 5 bits: 200 of the digest's 256 bits
        number, index = divmod(number, len(CODE_ALPHABET))
        raw += CODE_ALPHABET[index]
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_LENGTH, CODE_GROUP))


def txt_value(code: str) -> str:
    return f"{TXT_PREFIX}{code}"


def normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def syntax_error(name: str) -> str | None:
    """Why `name` is not a domain name we can set up, or None."""
    if not isinstance(name, str) or not name.strip():
        return "is required."
    domain = normalize(name)
    try:
        domain.encode("ascii")
    except UnicodeEncodeError:
        return "must be written in ASCII (use the xn-- form for international names)."
    if len(domain) > 253:
        return "must be at most 253 characters long."
    labels = domain.split(".")
    if len(labels) < 2:
        return f"'{domain}' is not a fully qualified domain name."
    for label in labels:
        if not _LABEL.fullmatch(label):
            return f"'{domain}' is not a valid domain name (label '{label}')."
    if labels[-1].isdigit():
        return f"'{domain}' is not a valid domain name (a numeric top-level label)."
    return None


def registrable_domain(name: str) -> str | None:
    """`example.co.uk` for `www.example.co.uk`; None when `name` is a public suffix or has none."""
    ext = _extract()(normalize(name))
    if not ext.suffix or not ext.domain:
        return None
    return f"{ext.domain}.{ext.suffix}"


def domain_error(name: str) -> str | None:
    """Syntax and public-suffix check: why `name` cannot be set up, or None."""
    error = syntax_error(name)
    if error:
        return error
    domain = normalize(name)
    ext = _extract()(domain)
    if not ext.suffix:
        return f"'{domain}' does not end in a known top-level domain."
    if not ext.domain:
        return f"'{domain}' is a public suffix: nobody can own it, book a domain below it."
    return None


def candidate_names(domain: str) -> list[str]:
    """The domain and its super-domains down to (and including) the registrable domain."""
    domain = normalize(domain)
    top = registrable_domain(domain)
    names = [domain]
    while top and names[-1] != top:
        names.append(names[-1].split(".", 1)[1])
    return names
