"""Fixtures of the environment-order tests (shared ones in tests/fixtures/orders.py): actors, and the
test repository schemes for every test here."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.hosts import target_hosts  # noqa: F401 (fixture)
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


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")
