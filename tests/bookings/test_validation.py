"""Validation of resources, asset data, domains and the hierarchy: every bad field named."""

import re

import pytest

from bookings.choices import BookingItemType as B
from bookings.choices import HostingAssetType as A
from bookings.validation.asset_data import validate_asset_data
from bookings.validation.assets import hierarchy_errors, identifier_error
from bookings.validation.domains import (
    CODE_ALPHABET,
    candidate_names,
    domain_error,
    generate_verification_code,
    registrable_domain,
)
from bookings.validation.resources import pool_overflow, validate_parent, validate_resources


def test_it_names_every_bad_resource_with_its_reason():
    errors = validate_resources(
        B.MANAGED_SERVER, {"CPU": 0, "RAM": "8", "Colour": "red", "SLA-Platform": "GOLD"}
    )
    assert errors["CPU"] == ["must be at least 1."]
    assert errors["RAM"] == ["must be a whole number."]
    assert errors["SSD"] == ["is required."]
    assert "is not a known property" in errors["Colour"][0]
    assert errors["SLA-Platform"] == ["must be one of BASIC, EXT8H, EXT4H, EXT2H."]


def test_it_checks_the_upper_end_of_a_range_and_booleans():
    errors = validate_resources(B.MANAGED_WEBSPACE, {"SSD": 5000, "Online Office Server": "yes"})
    assert errors == {"SSD": ["must be at most 2000."], "Online Office Server": ["must be true or false."]}
    assert validate_resources(B.MANAGED_WEBSPACE, {"SSD": 10, "Multi": 2}) == {}


def test_it_allows_each_type_only_under_its_parent_type():
    assert validate_parent(B.MANAGED_WEBSPACE, B.MANAGED_SERVER) is None
    assert validate_parent(B.MANAGED_WEBSPACE, None) is None
    assert "only be booked under a MANAGED_SERVER" in validate_parent(B.MANAGED_WEBSPACE, B.PRIVATE_CLOUD)
    assert "takes no parent" in validate_parent(B.DOMAIN_SETUP, B.MANAGED_SERVER)
    assert "takes no parent" in validate_parent(B.PRIVATE_CLOUD, B.PRIVATE_CLOUD)
    assert validate_parent(B.CLOUD_SERVER, B.PRIVATE_CLOUD) is None


def test_it_refuses_children_that_take_more_than_their_pool_has():
    errors = pool_overflow({"CPU": 8, "RAM": 16}, {"CPU": 6, "RAM": 8}, {"CPU": 4, "RAM": 8})
    assert errors == {"CPU": ["exceeds what the parent item has left (2 of 8)."]}


def test_it_generates_verification_codes_of_40_unambiguous_symbols_in_groups_of_4():
    codes = {generate_verification_code() for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert re.fullmatch(r"([A-HJ-NP-Z2-9]{4}-){9}[A-HJ-NP-Z2-9]{4}", code)
        assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
        assert not set("IO01") & set(code)


@pytest.mark.parametrize("suffix", ["com", "co.uk", "org", "de"])
def test_it_refuses_public_suffixes(suffix):
    assert "public suffix" in domain_error(suffix) or "not a fully qualified" in domain_error(suffix)


def test_it_refuses_a_multi_label_public_suffix_as_such():
    assert domain_error("co.uk") == "'co.uk' is a public suffix: nobody can own it, book a domain below it."


@pytest.mark.parametrize(
    "name", ["exa mple.org", "-a.org", "a..org", "x" * 64 + ".org", "bücher.de", "example.123"]
)
def test_it_refuses_malformed_domain_names(name):
    assert domain_error(name) is not None


def test_it_finds_the_registrable_domain_offline():
    assert registrable_domain("www.shop.example.co.uk") == "example.co.uk"
    assert registrable_domain("co.uk") is None
    assert candidate_names("a.b.example.org") == ["a.b.example.org", "b.example.org", "example.org"]


def test_it_knows_the_hierarchy_of_hosting_assets():
    assert hierarchy_errors(A.MANAGED_WEBSPACE, A.MANAGED_SERVER, None, B.MANAGED_WEBSPACE) == {}
    assert (
        "MANAGED_SERVER"
        in hierarchy_errors(A.MANAGED_WEBSPACE, A.CLOUD_SERVER, None, B.MANAGED_WEBSPACE)["parent_asset"][0]
    )
    assert hierarchy_errors(A.DOMAIN_HTTP_SETUP, A.DOMAIN_SETUP, A.MANAGED_WEBSPACE, None)[
        "assigned_to_asset"
    ]
    assert hierarchy_errors(A.DOMAIN_HTTP_SETUP, A.DOMAIN_SETUP, A.UNIX_USER, None) == {}
    assert hierarchy_errors(A.EMAIL_ADDRESS, None, None, None)["parent_asset"]
    assert hierarchy_errors(A.DOMAIN_SETUP, None, None, None) == {}


def test_it_checks_identifiers_against_their_parent():
    assert identifier_error(A.UNIX_USER, "abc00-web", "abc00") is None
    assert identifier_error(A.UNIX_USER, "xyz00-web", "abc00") is not None
    assert identifier_error(A.MANAGED_WEBSPACE, "abc0", None) is not None
    assert identifier_error(A.PGSQL_DATABASE, "abc00_shop", "abc00_shop") is None


def test_it_checks_the_asset_data_of_a_booking_by_type():
    errors = validate_asset_data(
        B.MANAGED_WEBSPACE, {"identifier": "ABC", "size": 3, "unix_user": {"shell": "/bin/zsh"}}, {}
    )
    assert errors["identifier"] == ["must be 3 characters and 2 digits (abc00)."]
    assert "is not a known property" in errors["size"][0]
    assert "must be one of" in errors["unix_user"]["shell"][0]
    errors = validate_asset_data(
        B.DOMAIN_SETUP, {"identifier": "other.org", "webspace": "abc00"}, {"domainName": "example.org"}
    )
    assert errors == {"identifier": ["must be the booked domain 'example.org' (or be left out)."]}
    assert validate_asset_data(B.DOMAIN_SETUP, None, {}) != {}
