"""Hosting assets: the type hierarchy (parent and assigned-to types), identifiers and config.

The HIERARCHY table is enforced twice: here, with a message per field, and in the database by a
trigger (migration 0002), so that no asset with a wrong parent or assigned-to type can ever be stored,
not even by a direct INSERT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bookings.choices import BookingItemType as B
from bookings.choices import HostingAssetType as A
from bookings.validation import Errors, Prop, Schema
from bookings.validation.domains import domain_error


@dataclass(frozen=True)
class Rule:
    parents: tuple[str, ...] = ()  # allowed parent types; empty: no parent allowed
    parent_required: bool = False
    assigned: tuple[str, ...] = ()  # allowed assigned-to types; empty: none allowed
    assigned_required: bool = False
    booking: tuple[str, ...] = ()  # booking-item types it may belong to; empty: none
    booking_required: bool = False


HIERARCHY: dict[str, Rule] = {
    A.MANAGED_SERVER: Rule(booking=(B.MANAGED_SERVER,), booking_required=True),
    A.CLOUD_SERVER: Rule(booking=(B.CLOUD_SERVER,), booking_required=True),
    A.MANAGED_WEBSPACE: Rule(
        parents=(A.MANAGED_SERVER,),
        parent_required=True,
        booking=(B.MANAGED_WEBSPACE,),
        booking_required=True,
    ),
    A.UNIX_USER: Rule(parents=(A.MANAGED_WEBSPACE,), parent_required=True),
    A.EMAIL_ALIAS: Rule(parents=(A.MANAGED_WEBSPACE,), parent_required=True),
    A.DOMAIN_SETUP: Rule(parents=(A.DOMAIN_SETUP,), booking=(B.DOMAIN_SETUP,)),
    A.DOMAIN_DNS_SETUP: Rule(
        parents=(A.DOMAIN_SETUP,),
        parent_required=True,
        assigned=(A.MANAGED_WEBSPACE,),
        assigned_required=True,
    ),
    A.DOMAIN_HTTP_SETUP: Rule(
        parents=(A.DOMAIN_SETUP,), parent_required=True, assigned=(A.UNIX_USER,), assigned_required=True
    ),
    A.DOMAIN_SMTP_SETUP: Rule(
        parents=(A.DOMAIN_SETUP,),
        parent_required=True,
        assigned=(A.MANAGED_WEBSPACE,),
        assigned_required=True,
    ),
    A.DOMAIN_MBOX_SETUP: Rule(
        parents=(A.DOMAIN_SETUP,),
        parent_required=True,
        assigned=(A.MANAGED_WEBSPACE,),
        assigned_required=True,
    ),
    A.EMAIL_ADDRESS: Rule(parents=(A.DOMAIN_MBOX_SETUP,), parent_required=True),
    A.PGSQL_USER: Rule(parents=(A.MANAGED_WEBSPACE,), parent_required=True),
    A.PGSQL_DATABASE: Rule(parents=(A.PGSQL_USER,), parent_required=True),
    A.MARIADB_USER: Rule(parents=(A.MANAGED_WEBSPACE,), parent_required=True),
    A.MARIADB_DATABASE: Rule(parents=(A.MARIADB_USER,), parent_required=True),
}

SERVER_ID = r"vm[0-9]{4}"
WEBSPACE_ID = r"[a-z][a-z0-9]{2}[0-9]{2}"
_NAME = r"[a-z0-9][a-z0-9._-]{0,30}"


def _webspace_of(parent_identifier: str) -> str:
    return parent_identifier.split("-", 1)[0].split("_", 1)[0]


def identifier_error(asset_type: str, identifier: str, parent_identifier: str | None) -> str | None:
    """Why `identifier` is not a valid name for an asset of `asset_type` under that parent, or None."""
    if not isinstance(identifier, str) or not identifier:
        return "is required."
    if len(identifier) > 253:
        return "must be at most 253 characters long."
    if asset_type in (A.MANAGED_SERVER, A.CLOUD_SERVER):
        ok, want = re.fullmatch(SERVER_ID, identifier), "vm followed by 4 digits (vm1234)"
    elif asset_type == A.MANAGED_WEBSPACE:
        ok, want = re.fullmatch(WEBSPACE_ID, identifier), "a 3-character prefix and 2 digits (abc00)"
    elif asset_type in (A.UNIX_USER, A.EMAIL_ALIAS):
        ws = re.escape(parent_identifier or "")
        ok, want = (
            re.fullmatch(rf"{ws}(-{_NAME})?", identifier),
            f"'{parent_identifier}' or '{parent_identifier}-name'",
        )
    elif asset_type in (A.PGSQL_USER, A.MARIADB_USER, A.PGSQL_DATABASE, A.MARIADB_DATABASE):
        ws = re.escape(_webspace_of(parent_identifier or ""))
        ok, want = (
            re.fullmatch(rf"{ws}_[a-z0-9_]{{1,30}}", identifier),
            f"'{_webspace_of(parent_identifier or '')}_name'",
        )
    elif asset_type == A.EMAIL_ADDRESS:
        ok = re.fullmatch(rf"[a-z0-9._+-]{{1,64}}@{re.escape(parent_identifier or '')}", identifier)
        want = f"local-part@{parent_identifier}"
    else:  # the DOMAIN_* types are named by their domain
        error = domain_error(identifier)
        if error:
            return error
        if asset_type != A.DOMAIN_SETUP and parent_identifier and identifier != parent_identifier:
            return f"must be the domain of its DOMAIN_SETUP ('{parent_identifier}')."
        return None
    return None if ok else f"must be {want}."


_BOOL = dict(kind=bool)
CONFIGS: dict[str, Schema] = {
    A.MANAGED_SERVER: Schema((Prop("monit_max_cpu_usage", minimum=10, maximum=100),)),
    A.CLOUD_SERVER: Schema(
        (
            Prop("image", kind=str, max_length=200),
            Prop("region", kind=str, max_length=50),
            Prop("provider", kind=str, max_length=20),
            Prop("instance", kind=str, max_length=64),
            Prop("address", kind=str, max_length=253),
            Prop("reservation", kind=int, minimum=1),
        )
    ),
    A.MANAGED_WEBSPACE: Schema(()),
    A.UNIX_USER: Schema(
        (
            Prop(
                "shell",
                kind=str,
                choices=("/bin/bash", "/bin/sh", "/usr/bin/passwd", "/bin/false"),
                default="/bin/bash",
            ),
            Prop("SSD hard quota", minimum=0, maximum=2000),
            Prop("SSD soft quota", minimum=0, maximum=2000),
        )
    ),
    A.EMAIL_ALIAS: Schema(
        (
            Prop(
                "target",
                kind=list,
                required=True,
                maximum=100,
                item_pattern=r"[^@\s]+(@[a-z0-9.-]+)?",
                help="not an address",
            ),
        )
    ),
    A.DOMAIN_SETUP: Schema(()),
    A.DOMAIN_DNS_SETUP: Schema(
        (
            Prop("TTL", minimum=60, maximum=86400, default=21600),
            Prop("auto-WILDCARD-MX-RR", **_BOOL),
            Prop("user-RR", kind=list, maximum=200, item_pattern=r"[^\n]{1,500}", help="one record per line"),
        )
    ),
    A.DOMAIN_HTTP_SETUP: Schema(
        (
            Prop("cgi", **_BOOL),
            Prop("fastcgi", **_BOOL),
            Prop("htdocsfallback", **_BOOL),
            Prop("indexes", **_BOOL),
            Prop("letsencrypt", **_BOOL),
            Prop(
                "subdomains",
                kind=list,
                maximum=100,
                item_pattern=r"\*|[a-z0-9-]{1,63}",
                help="not a sub-domain label",
            ),
        )
    ),
    A.DOMAIN_SMTP_SETUP: Schema(()),
    A.DOMAIN_MBOX_SETUP: Schema(()),
    A.EMAIL_ADDRESS: Schema((Prop("target", kind=list, required=True, maximum=100),)),
    A.PGSQL_USER: Schema(()),
    A.PGSQL_DATABASE: Schema((Prop("encoding", kind=str, choices=("UTF8", "LATIN1"), default="UTF8"),)),
    A.MARIADB_USER: Schema(()),
    A.MARIADB_DATABASE: Schema(
        (Prop("encoding", kind=str, choices=("utf8mb4", "latin1"), default="utf8mb4"),)
    ),
}


def hierarchy_errors(
    asset_type: str, parent_type: str | None, assigned_type: str | None, booking_type: str | None
) -> Errors:
    rule = HIERARCHY[asset_type]
    errors: Errors = {}
    for field, got, allowed, required in (
        ("parent_asset", parent_type, rule.parents, rule.parent_required),
        ("assigned_to_asset", assigned_type, rule.assigned, rule.assigned_required),
        ("booking_item", booking_type, rule.booking, rule.booking_required),
    ):
        if got is None:
            if required:
                errors[field] = [f"a {asset_type} needs one of type {' or '.join(allowed)}."]
        elif not allowed:
            errors[field] = [f"a {asset_type} takes none."]
        elif got not in allowed:
            errors[field] = [f"a {asset_type} needs one of type {' or '.join(allowed)}, not {got}."]
    return errors


def violation_sql(table: str = "bookings_hostingasset") -> str:
    """One boolean SQL expression, true when NEW breaks HIERARCHY (PostgreSQL and SQLite alike)."""

    def type_of(column: str) -> str:
        return f"COALESCE((SELECT x.type FROM {table} x WHERE x.id = NEW.{column}), '')"  # noqa: S608 (our constants)

    def check(column: str, allowed: tuple[str, ...], required: bool) -> str:
        if not allowed:
            return f"NEW.{column} IS NOT NULL"
        listed = ", ".join(f"'{t}'" for t in allowed)
        clause = f"{type_of(column)} NOT IN ({listed})"
        return clause if required else f"(NEW.{column} IS NOT NULL AND {clause})"

    cases = []
    for asset_type, rule in HIERARCHY.items():
        parts = [
            check("parent_asset_id", rule.parents, rule.parent_required),
            check("assigned_to_asset_id", rule.assigned, rule.assigned_required),
        ]
        cases.append(f"(NEW.type = '{asset_type}' AND ({' OR '.join(parts)}))")
    return "(" + " OR ".join(cases) + ")"
