"""The API against its own OpenAPI schema (/api/schema/), with schemathesis: generated requests, valid
and invalid, to every operation, with token authentication as Acme's owner. No answer may be a 5xx,
and every answer the schema documents must match it (body, content type, headers).

The requests go to the WSGI application in this process, so they run in the test's transaction;
half of them name Acme's own objects, so that detail pages answer 200 and are checked too.
"""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from provisioning.wsgi import application

EXAMPLES = 300  # per operation, valid and invalid requests together: 300-500 each, under 3 minutes

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
_turn = itertools.count()


def _known_ids(world) -> dict[str, str]:
    return {
        "operations": str(world.operation.pk),
        "projects": str(world.project.pk),
        "booking-items": str(world.item.pk),
        "hosting-assets": str(world.asset.pk),
        "image-builds": str(world.build.pk),
        "reservations": str(world.reservation.pk),
        "pubkeys": str(world.pubkey.pk),
        "cloud-accounts": str(world.account.pk),
        "application-requests": str(world.request.pk),
        "application-teams": str(world.team.pk),
        "orders": str(world.order.pk),
    }


@pytest.fixture
def in_test_transaction():
    """The WSGI application closes the database connection after every request, as it should in
    production; here that is the test's transaction, so it stays open (as Django's test client does)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def acme_world(actors, world, settings, in_test_transaction):
    settings.RATE_LIMIT_BOOKING_ITEMS = None  # the generator is not a customer: it is not counted
    settings.RATE_LIMIT_IMAGE_BUILDS = None
    return actors["owner"].token, _known_ids(world)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_to_its_schema_and_never_answers_5xx(case, acme_world):
    token, known = acme_world
    if case.path_parameters and "id" in case.path_parameters and next(_turn) % 2 == 0:
        resource = case.path.strip("/").split("/")[1]
        if resource in known:
            case.path_parameters["id"] = known[resource]
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
