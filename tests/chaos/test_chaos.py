"""The chaos drills, each in a pytest process of its own against private PostgreSQL and Redis servers
(see conftest.py for why). Their tables and assertions are in tests/chaos/drills/."""

import pytest

from tests.chaos.conftest import run_drill

pytestmark = [pytest.mark.timeout(1200)]


def test_the_service_keeps_every_promise_while_its_worker_is_killed_and_its_servers_restart(private_servers):
    assert run_drill(private_servers, "drill_workload", timeout=900) == 0


def test_two_workers_never_run_a_step_twice_and_a_broker_outage_loses_no_saga(private_servers):
    assert run_drill(private_servers, "drill_engine", timeout=300) == 0
