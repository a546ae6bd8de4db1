"""Who may book a domain: not a name that is, or lies below, another customer's domain setup, and only
with the verification code the service binds to the customer (`bookings.verification`). The booking
service checks it before anything is stored, and the ownership step again before anything is created
(the other customer's setup may have come to be in between)."""

from __future__ import annotations

from bookings.choices import HostingAssetType
from bookings.models import HostingAsset
from bookings.validation import Errors
from bookings.validation.domains import candidate_names, domain_error, normalize
from bookings.verification import verification_code


def domain_taken_by_other(*, customer_id: int, domain: str) -> HostingAsset | None:
    """The domain setup of another customer that `domain` is, or lies below: its owner proved it (or
    registered it), so nobody else may book it or a name under it, whatever their DNS says."""
    return (
        HostingAsset.objects.filter(
            type=HostingAssetType.DOMAIN_SETUP, identifier__in=candidate_names(domain)
        )
        .exclude(customer_id=customer_id)
        .order_by("-identifier")
        .first()
    )


def domain_taken_message(domain: str, taken: HostingAsset) -> str:
    below = "is" if taken.identifier == normalize(domain) else f"lies below {taken.identifier}, which is"
    return (
        f"'{normalize(domain)}' {below} set up for another customer: it cannot be booked here. If the "
        "domain is yours now, ask a hostmaster to transfer it."
    )


def domain_booking_errors(*, customer_id: int, resources: dict) -> Errors:
    """What is wrong with booking `resources['domainName']` for the customer, as resource errors."""
    domain = resources["domainName"]
    problem = domain_error(domain)
    if problem:
        return {"domainName": [problem]}
    taken = domain_taken_by_other(customer_id=customer_id, domain=domain)
    if taken is not None:
        return {"domainName": [domain_taken_message(domain, taken)]}
    code = resources.get("verificationCode")
    if code is not None and code != verification_code(customer_id=customer_id, domain=domain):
        # A code the customer chose could be one published by somebody else: the service chooses it.
        return {
            "verificationCode": [
                "is chosen by the service (bound to you and the domain): leave it out, the answer names "
                "the TXT record to add."
            ]
        }
    return {}
