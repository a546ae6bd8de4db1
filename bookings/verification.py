"""DNS ownership verification of a domain (dnspython, against settings.DNS_NAMESERVERS).

Ownership is proven by a TXT record `domain-setup-verification-code=<code>` on the domain or on one of
its super-domains down to the registrable domain. The code is the service's, bound to the customer and
the domain (`verification_code`): a TXT value is public, so a code anybody could choose or copy would
prove nothing. A registrable domain that does not exist in DNS is a new registration: there is nobody
to prove anything against, so it needs no proof (and once it is an asset of one customer, no other
customer can book it or a name below it: `bookings.services`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings

from bookings.validation.domains import (
    bound_verification_code,
    candidate_names,
    normalize,
    registrable_domain,
    txt_value,
)


class DnsUnavailable(Exception):
    """The nameservers did not answer (timeout, SERVFAIL): try again later, it proves nothing."""


@dataclass(frozen=True)
class Verification:
    proven: bool
    reason: str  # for people: why it is proven, or what is missing
    record_name: str = ""  # where the TXT record was found or should go


def _secret() -> bytes:
    """BOOKINGS_VERIFICATION_SECRET, else one derived from SECRET_KEY under a label of its own (the
    code must not be computable by anybody who does not hold the service's secrets)."""
    own = getattr(settings, "BOOKINGS_VERIFICATION_SECRET", "") or ""
    if own:
        return own.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"bookings.domain-verification", hashlib.sha256).digest()


def verification_code(*, customer_id: int, domain: str) -> str:
    """The code the TXT record of `customer_id`'s booking of `domain` must carry."""
    return bound_verification_code(customer_id=customer_id, domain=domain, secret=_secret())


def resolver() -> dns.resolver.Resolver:
    servers = getattr(settings, "DNS_NAMESERVERS", None) or []
    if not servers:
        res = dns.resolver.Resolver()
    else:
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in servers]
    res.timeout = float(getattr(settings, "DNS_TIMEOUT", 2.0))
    res.lifetime = float(getattr(settings, "DNS_LIFETIME", 5.0))
    res.cache = None  # a record the user just added must be seen at once
    return res


def _exists(res: dns.resolver.Resolver, name: str) -> bool:
    try:
        res.resolve(name, dns.rdatatype.SOA, raise_on_no_answer=False)
        return True
    except dns.resolver.NXDOMAIN:
        return False
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
        raise DnsUnavailable(f"the nameservers did not answer for {name}: {exc}") from exc


def _txt_values(res: dns.resolver.Resolver, name: str) -> list[str] | None:
    """The TXT strings of `name`; None when the name does not exist."""
    try:
        answer = res.resolve(name, dns.rdatatype.TXT, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return None
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as exc:
        raise DnsUnavailable(f"the nameservers did not answer for {name}: {exc}") from exc
    values = []
    for rdata in answer.rrset or []:
        # A long TXT value may be split into several strings: they form one value.
        values.append(b"".join(rdata.strings).decode("utf-8", errors="replace"))
    return values


def verify_ownership(domain: str, code: str) -> Verification:
    """Look for the TXT record on `domain` and its super-domains. Raises DnsUnavailable."""
    domain = normalize(domain)
    top = registrable_domain(domain)
    if top is None:
        return Verification(False, f"'{domain}' is a public suffix: nobody can own it.")
    res = resolver()
    if not _exists(res, top):
        return Verification(
            True, f"'{top}' does not exist in DNS yet: a new registration needs no proof.", top
        )
    wanted = txt_value(code)
    for name in candidate_names(domain):
        values = _txt_values(res, name)
        if values and wanted in values:
            return Verification(True, f"the TXT record was found on {name}.", name)
    return Verification(False, f"no TXT record '{wanted}' on {domain} or a super-domain.", domain)


def txt_record(domain: str, code: str) -> str:
    """The record to add, as a zone file line: `shop.example.org. IN TXT "domain-setup-..."`."""
    return f'{normalize(domain)}. IN TXT "{txt_value(code)}"'


def instructions(domain: str, code: str) -> str:
    """What the user must do, word for word."""
    domain = normalize(domain)
    top = registrable_domain(domain) or domain
    where = domain if domain == top else f"{domain} (or a super-domain down to {top})"
    return (
        f"Prove that you own {domain}: add this TXT record to the DNS zone of {where}:\n"
        f"    {txt_record(domain, code)}\n"
        "We check again automatically, less often as time goes by. Once the record is published, send "
        'the signal "record_added" (POST /api/operations/<operation>/signals/ with {"name": "record_added"}) '
        "and we check at once."
    )
