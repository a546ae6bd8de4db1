"""Booking items: which parent each type takes and which resources it books (with their ranges)."""

from __future__ import annotations

from bookings.choices import BookingItemType as T
from bookings.validation import Errors, Prop, Schema
from bookings.validation.domains import VERIFICATION_CODE_PATTERN

# Parent booking-item type of each type; None: it hangs directly on a project.
# `required` says whether the type can only be booked under such a parent.
PARENTS: dict[str, tuple[str | None, bool]] = {
    T.PRIVATE_CLOUD: (None, False),
    T.CLOUD_SERVER: (T.PRIVATE_CLOUD, False),
    T.MANAGED_SERVER: (T.PRIVATE_CLOUD, False),
    T.MANAGED_WEBSPACE: (T.MANAGED_SERVER, False),
    T.DOMAIN_SETUP: (None, False),
}

_SLA_PLATFORM = ("BASIC", "EXT8H", "EXT4H", "EXT2H")
_SERVER = (
    Prop("CPU", required=True, minimum=1, maximum=128),
    Prop("RAM", required=True, minimum=1, maximum=1024, help="GB"),
    Prop("SSD", required=True, minimum=25, maximum=8000),
    Prop("HDD", minimum=0, maximum=16000),
    Prop("Traffic", minimum=250, maximum=10000),
    Prop("SLA-Platform", kind=str, choices=_SLA_PLATFORM),
)

SCHEMAS: dict[str, Schema] = {
    T.PRIVATE_CLOUD: Schema(
        (
            Prop("CPU", required=True, minimum=1, maximum=1024),
            Prop("RAM", required=True, minimum=1, maximum=8192),
            Prop("SSD", required=True, minimum=25, maximum=100000),
            Prop("HDD", minimum=0, maximum=200000),
            Prop("Traffic", minimum=250, maximum=100000),
            Prop("SLA-Platform", kind=str, choices=_SLA_PLATFORM),
        )
    ),
    T.CLOUD_SERVER: Schema(_SERVER),
    T.MANAGED_SERVER: Schema(
        (
            *_SERVER,
            Prop("SLA-EMail", kind=bool),
            Prop("SLA-Maria", kind=bool),
            Prop("SLA-PgSQL", kind=bool),
            Prop("SLA-Web", kind=bool),
        )
    ),
    T.MANAGED_WEBSPACE: Schema(
        (
            Prop("SSD", required=True, minimum=1, maximum=2000),
            Prop("HDD", minimum=0, maximum=10000),
            Prop("Traffic", minimum=10, maximum=64000),
            Prop("Multi", minimum=1, maximum=100, default=1),
            Prop("Daemons", minimum=0, maximum=10),
            Prop("Online Office Server", kind=bool),
            Prop("SLA-Platform", kind=str, choices=("BASIC", "EXT24H")),
        )
    ),
    T.DOMAIN_SETUP: Schema(
        (
            Prop("domainName", kind=str, required=True, max_length=253),
            Prop(
                "verificationCode",
                kind=str,
                pattern=VERIFICATION_CODE_PATTERN,
                help="must be 8 to 100 letters, digits and dashes.",
            ),
        )
    ),
}

# Resources that children of a pool take from their parent: their sum must fit into it.
POOLED = ("CPU", "RAM", "SSD", "HDD", "Traffic")


def validate_resources(item_type: str, resources: dict) -> Errors:
    return SCHEMAS[item_type].validate(resources)


def validate_parent(item_type: str, parent_type: str | None) -> str | None:
    """The error for booking `item_type` under a parent of `parent_type` (None: no parent), if any."""
    allowed, required = PARENTS[item_type]
    if parent_type is None:
        if required:
            return f"a {item_type} must be booked under a {allowed}."
        return None
    if allowed is None:
        return f"a {item_type} takes no parent item (it is booked directly in a project)."
    if parent_type != allowed:
        return f"a {item_type} can only be booked under a {allowed}, not under a {parent_type}."
    return None


def pool_overflow(parent_resources: dict, used: dict[str, int | None], resources: dict) -> Errors:
    """Errors when a child taking `resources` would, with what its siblings already `used` (summed per
    pooled key), book more of its parent than the parent has."""
    errors: Errors = {}
    for key in POOLED:
        if key not in parent_resources or key not in resources:
            continue
        taken = int(used.get(key) or 0)
        if taken + int(resources[key]) > int(parent_resources[key]):
            free = int(parent_resources[key]) - taken
            errors[key] = [
                f"exceeds what the parent item has left ({max(free, 0)} of {parent_resources[key]})."
            ]
    return errors
