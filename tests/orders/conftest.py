"""Fixtures of the environment-order tests (shared ones in tests/fixtures/orders.py): actors, and the
test repository schemes for every test here."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from provisioning.services import api_user_create_or_update
from tests.fixtures.orders import (  # noqa: F401 (fixtures)
    ServiceRepo,
    leave_no_service,
    orders_settings,
    orders_worker,
    running,
    service_repo,
)


@pytest.fixture(autouse=True)
def _orders_settings_everywhere(request):
    request.getfixturevalue("orders_settings")


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def owner():
    user, token = api_user_create_or_update(username="olivia", customer_name="Acme")
    return user, client_for(token)


@pytest.fixture
def outsider():
    user, token = api_user_create_or_update(username="oscar", customer_name="Globex")
    return user, client_for(token)


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")
