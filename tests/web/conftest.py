"""Actors of the page tests: a customer's owner, an outsider of another customer, a hostmaster; and the
application tests' people of Acme (Mia and Carl of team "web", Ada its authorizer) with their team,
and the guards that no bucket and no local instance outlive a test."""

from __future__ import annotations

import pytest
from django.utils import timezone

from bookings.models import BookingItem, Project
from provisioning.models import Operation, StepRun
from tests.applications.conftest import (  # noqa: F401
    acme,
    authorizer,
    colleague,
    no_bucket_left_behind,
    requester,
    team,
)
from tests.fixtures.orders import orders_settings, orders_worker, service_repo  # noqa: F401
from tests.images.conftest import no_local_instance_left  # noqa: F401


@pytest.fixture(autouse=True)
def _static(collected_static):
    """The pages name their script and style through the manifest that collectstatic writes."""


@pytest.fixture
def owner(web_user):
    return web_user("olivia", customer="Acme")


@pytest.fixture
def outsider(web_user):
    return web_user("oscar", customer="Globex")


@pytest.fixture
def hostmaster(web_user):
    return web_user("hilda", customer="Hosting", hostmaster=True)


@pytest.fixture
def project(owner) -> Project:
    return Project.objects.create(customer=owner.memberships.get().customer, caption="Shop")


def make_item(project: Project, caption: str = "cloud", **fields) -> BookingItem:
    fields.setdefault("type", "PRIVATE_CLOUD")
    fields.setdefault("resources", {"CPU": 4, "RAM": 8, "SSD": 100})
    return BookingItem.objects.create(project=project, caption=caption, **fields)


def make_failed_operation(project: Project, error: str = "The provider said no.") -> Operation:
    """An asset-creation operation that failed on its first step, as the engine leaves it."""
    now = timezone.now()
    op = Operation.objects.create(
        kind="bookings.webspace",
        customer=project.customer,
        state="failed",
        position=0,
        steps={"validate": {"status": "failed", "attempts": 1}},
        message=error,
        error_message=error,
        error_detail="Traceback: (the detail hostmasters see)",
        finished_at=now,
    )
    StepRun.objects.create(
        operation=op,
        step="validate",
        position=0,
        attempt=1,
        started_at=now,
        finished_at=now,
        outcome="failed",
        message=error,
        detail="Traceback: (the detail hostmasters see)",
    )
    return op
