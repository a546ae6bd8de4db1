"""Actors and factories of the bookings tests: one object each, named for who they are."""

from __future__ import annotations

import time

import pytest

from bookings.choices import BookingItemType, HostingAssetType
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from bookings.services import hosting_asset_create
from provisioning.saga import runner


@pytest.fixture
def project(owner) -> Project:
    return Project.objects.create(customer=owner[0].memberships.get().customer, caption="Shop")


def make_server(project: Project, identifier: str = "vm1001") -> HostingAsset:
    """A managed server booked and set up (as a hostmaster would), with no saga."""
    item = BookingItem.objects.create(
        project=project,
        type=BookingItemType.MANAGED_SERVER,
        caption=f"server {identifier}",
        resources={"CPU": 4, "RAM": 8, "SSD": 100},
    )
    return hosting_asset_create(
        type=HostingAssetType.MANAGED_SERVER, identifier=identifier, booking_item=item
    )


def make_webspace(
    project: Project, identifier: str = "abc00", server: HostingAsset | None = None
) -> HostingAsset:
    server = server or make_server(project)
    item = BookingItem.objects.create(
        project=project,
        parent_item=server.booking_item,
        type=BookingItemType.MANAGED_WEBSPACE,
        caption=f"webspace {identifier}",
        resources={"SSD": 10},
    )
    webspace = hosting_asset_create(
        type=HostingAssetType.MANAGED_WEBSPACE, identifier=identifier, booking_item=item, parent_asset=server
    )
    hosting_asset_create(type=HostingAssetType.UNIX_USER, identifier=identifier, parent_asset=webspace)
    return webspace


def wait_until(predicate, timeout: float = 30.0, sweep: bool = True, what: str = "condition"):
    """Poll `predicate`, running the real sweeper as beat would (wait deadlines, lost messages)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if sweep:
            runner.sweep()
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")


def event_of(item_id: int) -> BookingItemCreatedEvent | None:
    return BookingItemCreatedEvent.objects.filter(booking_item_id=item_id).first()
