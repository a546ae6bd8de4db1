"""Fixtures of the chaos drills. They run only in the drill process that tests/chaos/test_chaos.py
starts against the private servers (see tests/chaos/conftest.py); anywhere else they fail."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
import redis
from django.db import close_old_connections, connection
from django.db.utils import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from tests.chaos.servers import PrivatePostgres, PrivateRedis
from tests.conftest import ARTIFACTS

# Clocks of the local provider for the drill's workers: quick builds and boots, a little latency on
# every call, as a cloud API has.
DRILL_ENV = {
    "LOCAL_PROVIDER_BUILD_SECONDS": "1.0",
    "LOCAL_PROVIDER_BOOT_SECONDS": "0.5",
    "LOCAL_PROVIDER_LATENCY": "0.1",
    "IMAGES_POLL_INTERVAL": "0.3",
    "ORDERS_REPOSITORY_SCHEMES": "https,ssh,file",
}


class ServiceUnavailable(Exception):
    """The service answered 503 (its database is restarting): the caller tries again later."""


def expect(answer, status: int):
    """`answer` must have `status`; a 503 is an outage, which `outlasting` outlasts."""
    if answer.status_code == 503:
        raise ServiceUnavailable(answer.json()["detail"])
    assert answer.status_code == status, answer.content
    return answer


# What a server going away looks like to a caller: it tries again once the server is back.
OUTAGE_ERRORS = (
    OperationalError,
    InterfaceError,
    BrokerError,
    redis.RedisError,
    ConnectionError,
    ServiceUnavailable,
)


@pytest.fixture(scope="session")
def chaos_servers() -> tuple[PrivatePostgres, PrivateRedis]:
    if not os.environ.get("CHAOS_PG_PORT"):
        pytest.fail("The drills run through tests/chaos/test_chaos.py, against private servers.")
    return PrivatePostgres.from_env(), PrivateRedis.from_env()


@pytest.fixture(scope="session")
def drill_env(chaos_servers, worker_env) -> dict[str, str]:
    """The workers' environment: the session's (private servers, moto, DNS) plus the drill's clocks."""
    # The drill drives the sweeper itself at times: its "sending it again" lines would bury the tables.
    logging.getLogger("provisioning.saga").setLevel(logging.WARNING)
    os.environ.update(DRILL_ENV)  # the services read these from the environment when settings have none
    return {**worker_env, **DRILL_ENV}


@pytest.fixture
def drill_logdir() -> Path:
    logdir = ARTIFACTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    return logdir


def outlasting(call, *, what: str, timeout: float = 60.0):
    """Call `call()` until it gets through a server outage (PostgreSQL or Redis restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except OUTAGE_ERRORS:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: the servers did not come back within {timeout}s") from None
            connection.close()
            time.sleep(0.5)
            close_old_connections()
