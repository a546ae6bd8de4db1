"""Actors, teams and helpers of the application-request tests.

Fault injection is switched on in the environment when this module is imported, before the session's
worker starts, so that the worker (a separate process) allows it too.
"""

from __future__ import annotations

import os
import time

import boto3
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from provisioning.applications.models import ApplicationRequest, Team
from provisioning.applications.services import team_create
from provisioning.models import Customer
from provisioning.providers.buckets import LocalBuckets
from provisioning.saga import runner
from provisioning.services import api_user_create_or_update
from tests.fixtures.actors import client_for

os.environ.setdefault("APPLICATIONS_FAULT_INJECTION", "true")


def _user(username: str, customer: str, **kwargs):
    user, token = api_user_create_or_update(username=username, customer_name=customer, **kwargs)
    user.email = f"{username}@example.com"
    user.save(update_fields=["email"])
    return user, client_for(token)


@pytest.fixture
def requester():
    """Mia, a member of team "web" of Acme: she submits requests."""
    return _user("mia", "Acme", role="member")


@pytest.fixture
def authorizer():
    """Ada, an authorizer of team "web" of Acme (a member of Acme, not its owner)."""
    return _user("ada", "Acme", role="member")


@pytest.fixture
def colleague():
    """Carl, another member of Acme: he sees Acme's requests but may not decide them."""
    return _user("carl", "Acme", role="member")


@pytest.fixture
def outsider():
    """Oscar of Globex: he sees nothing of Acme."""
    return _user("oscar", "Globex", role="owner")


@pytest.fixture
def hostmaster():
    return _user("hank", "Hosting", hostmaster=True)


@pytest.fixture
def acme(requester) -> Customer:
    return Customer.objects.get(name="Acme")


@pytest.fixture
def team(acme, requester, authorizer, colleague) -> Team:
    return team_create(
        customer=acme, name="web", members=[requester[0], colleague[0]], authorizers=[authorizer[0]]
    )


def body(**changes) -> dict:
    return {"application": "shop", "team": "web", "authorizer": "ada", "time_limit_seconds": 60, **changes}


def submit(client: APIClient, **changes) -> dict:
    answer = client.post("/api/application-requests/", body(**changes), format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def get(client: APIClient, request_id: str) -> dict:
    answer = client.get(f"/api/application-requests/{request_id}/")
    assert answer.status_code == 200, answer.content
    return answer.json()


def wait_until(predicate, timeout: float = 40.0, what: str = "condition", sweep: bool = True):
    """Poll `predicate`, running the real sweeper as beat would (deadlines, lost messages)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if sweep:
            runner.sweep()
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")


def wait_state(request_id: str, *states: str, timeout: float = 40.0) -> ApplicationRequest:
    def reached():
        row = ApplicationRequest.objects.get(pk=request_id)
        return row if row.state in states else None

    try:
        return wait_until(reached, timeout, what=f"request state in {states}")
    except AssertionError:
        row = ApplicationRequest.objects.select_related("operation").get(pk=request_id)
        raise AssertionError(
            f"request {request_id} is {row.state} ({row.status}; {row.error}); operation {row.operation.steps}"
        ) from None


def s3(region: str = "us-east-1"):
    return boto3.client("s3", region_name=region, endpoint_url=settings.AWS_ENDPOINT_URL)


def bucket_names() -> set[str]:
    return {b["Name"] for b in s3().list_buckets().get("Buckets", [])}


@pytest.fixture
def no_bucket_left_behind(aws_endpoint):
    """The test's own buckets (local and at moto) are removed after it."""
    from provisioning.providers.buckets import AwsBuckets

    before = bucket_names()
    yield
    local = LocalBuckets()
    for region_dir in local.root.glob("*/buckets"):
        for folder in region_dir.iterdir():
            local.delete_bucket(region=region_dir.parent.name, name=folder.name)
    for name in bucket_names() - before:
        region = s3().get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
        AwsBuckets().delete_bucket(region=region, name=name)
