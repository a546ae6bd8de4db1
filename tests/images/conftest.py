"""Actors, factories and clocks of the images tests.

The local provider's clocks are set in the environment when this module is imported, before the
session's worker starts, so that the worker (a separate process) runs by them too: builds take
1.5 s, instances boot in under one, and every provider call takes a quarter second, as a cloud's
API would, so that each step can be watched through the API.
"""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection

from provisioning.models import Customer
from provisioning.providers.local import LocalProvider
from provisioning.saga import runner
from tests.providers.conftest import MANIFEST, ssh_public_key

CLOCKS = {
    "LOCAL_PROVIDER_BUILD_SECONDS": "1.5",
    "LOCAL_PROVIDER_BOOT_SECONDS": "0.8",
    "LOCAL_PROVIDER_LATENCY": "0.25",
    "IMAGES_POLL_INTERVAL": "0.3",
    "IMAGES_FAULT_INJECTION": "true",
}
for _name, _value in CLOCKS.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture
def acme(owner) -> Customer:
    return owner[0].memberships.get().customer


@pytest.fixture(autouse=True)
def no_local_instance_left():
    """Every local instance a test started is terminated after it, and none may survive that."""
    yield
    local = LocalProvider(latency=0)
    local.stop_all()
    assert local.live_processes() == []


def manifest(provider: str = "local", regions: tuple[str, ...] = ("local-1", "local-2"), **changes) -> dict:
    return {**MANIFEST, "target": {"provider": provider, "regions": list(regions)}, **changes}


def launch_body(name: str = "web", provider: str = "local", regions=("local-1", "local-2"), **launch) -> dict:
    return {
        "name": name,
        "manifest": manifest(provider, regions),
        "launch": {"amount": 3, "public_key": ssh_public_key(), **launch},
    }


def wait_until(predicate, timeout: float = 60.0, what: str = "condition", sweep: bool = True):
    """Poll `predicate`, running the real sweeper as beat would (lost messages, dead workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if sweep:
            runner.sweep()
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")


# A status listener as another app would name it: it writes every status into a table of its own.
LISTENER = "tests.images.conftest.record_status"


def ensure_listener_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS test_launch_status "
            "(id serial PRIMARY KEY, key varchar(64), state varchar(20), status text)"
        )


def record_status(*, reservation, view) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_launch_status (key, state, status) VALUES (%s, %s, %s)",
            [reservation.listener_key, reservation.state, reservation.status],
        )


def recorded_statuses(key: str) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT state, status FROM test_launch_status WHERE key = %s ORDER BY id", [key])
        return cursor.fetchall()
