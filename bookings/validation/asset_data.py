"""The `hosting_asset` part of a booking: what each booking type may ask to be created.

Only the shape is checked here (keys, identifier syntax, config per asset type), so that bad input is
answered 400 with nothing stored. What depends on other rows or on DNS (is the identifier free, does
the webspace exist, is the domain proven) is the saga's business: it never rolls the booking back.
"""

from __future__ import annotations

from typing import Any

from bookings.choices import BookingItemType as B
from bookings.choices import HostingAssetType as A
from bookings.validation import Errors, Prop, Schema
from bookings.validation.assets import CONFIGS, SERVER_ID, WEBSPACE_ID, identifier_error
from bookings.validation.domains import domain_error, normalize

_CAPTION = Prop("caption", kind=str, max_length=80)
_CONFIG = Prop("config", kind=dict)

SCHEMAS: dict[str, Schema] = {
    B.PRIVATE_CLOUD: Schema((_CAPTION, Prop("notes", kind=str, max_length=2000))),
    B.MANAGED_SERVER: Schema(
        (
            Prop("identifier", kind=str, pattern=SERVER_ID, help="must be vm followed by 4 digits."),
            _CAPTION,
            _CONFIG,
        )
    ),
    B.CLOUD_SERVER: Schema(
        (
            Prop("identifier", kind=str, pattern=SERVER_ID, help="must be vm followed by 4 digits."),
            _CAPTION,
            _CONFIG,
            # {"manifest": ..., "launch": ...} as for POST /api/image-builds/: the server is launched
            # through the images app's build→launch saga; without it a hostmaster sets it up by hand.
            Prop("launch", kind=dict),
        )
    ),
    B.MANAGED_WEBSPACE: Schema(
        (
            Prop(
                "identifier",
                kind=str,
                required=True,
                pattern=WEBSPACE_ID,
                help="must be 3 characters and 2 digits (abc00).",
            ),
            _CAPTION,
            _CONFIG,
            Prop("parent_asset", kind=str, pattern=SERVER_ID, help="must name a server (vm1234)."),
            Prop("unix_user", kind=dict),
        )
    ),
    B.DOMAIN_SETUP: Schema(
        (
            Prop("identifier", kind=str, max_length=253),
            _CAPTION,
            Prop(
                "webspace", kind=str, required=True, pattern=WEBSPACE_ID, help="must name a webspace (abc00)."
            ),
            Prop("unix_user", kind=str, max_length=64),
            Prop("dns", kind=dict),
            Prop("http", kind=dict),
            Prop("smtp", kind=dict),
            Prop("mbox", kind=dict),
        )
    ),
}

# Which asset type's config each nested object is checked against.
_NESTED = {
    ("config", B.MANAGED_SERVER): A.MANAGED_SERVER,
    ("config", B.CLOUD_SERVER): A.CLOUD_SERVER,
    ("config", B.MANAGED_WEBSPACE): A.MANAGED_WEBSPACE,
    ("unix_user", B.MANAGED_WEBSPACE): A.UNIX_USER,
    ("dns", B.DOMAIN_SETUP): A.DOMAIN_DNS_SETUP,
    ("http", B.DOMAIN_SETUP): A.DOMAIN_HTTP_SETUP,
    ("smtp", B.DOMAIN_SETUP): A.DOMAIN_SMTP_SETUP,
    ("mbox", B.DOMAIN_SETUP): A.DOMAIN_MBOX_SETUP,
}


def validate_asset_data(item_type: str, data: Any, resources: dict) -> Errors:
    if not isinstance(data, dict) or not data:
        return {"non_field_errors": ["must be a JSON object with the data of the asset to create."]}
    schema = SCHEMAS[item_type]
    errors = schema.validate(data)
    for (key, for_type), asset_type in _NESTED.items():
        if for_type == item_type and isinstance(data.get(key), dict) and key not in errors:
            nested = CONFIGS[asset_type].validate(data[key])
            if nested:
                errors[key] = nested  # type: ignore[assignment]
    if item_type == B.DOMAIN_SETUP and "identifier" not in errors and data.get("identifier"):
        domain = resources.get("domainName")
        error = domain_error(data["identifier"])
        if error:
            errors["identifier"] = [error]
        elif isinstance(domain, str) and normalize(data["identifier"]) != normalize(domain):
            errors["identifier"] = [f"must be the booked domain '{normalize(domain)}' (or be left out)."]
    if item_type == B.DOMAIN_SETUP and isinstance(data.get("unix_user"), str) and "webspace" not in errors:
        error = identifier_error(A.UNIX_USER, data["unix_user"], data.get("webspace"))
        if error:
            errors["unix_user"] = [error]
    return errors
