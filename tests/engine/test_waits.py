"""Waiting costs no worker: a step that looks at something slow returns LookAgain, each look is a short
task, and the engine keeps the interval, the number of looks and the time limit in the row (against
PostgreSQL, Redis and a real worker with two processes)."""

import time

import pytest
from django.db import transaction

from provisioning.models import Operation, StepRun
from provisioning.saga import PollPolicy, runner
from tests import sagas
from tests.engine.helpers import wait_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(autouse=True)
def side_effect_table():
    sagas.ensure_table()


def start_polls(ready_after: float, poll_timeout: float | None = None, plan: dict | None = None):
    data = {"plan": plan or {}, "ready_after": ready_after}
    if poll_timeout is not None:
        data["poll_timeout"] = poll_timeout
    with transaction.atomic():
        return runner.start(kind="test_polls", data=data)


def test_it_looks_again_until_ready_then_goes_on():
    op = wait_final(start_polls(ready_after=2.0).pk)
    assert op.state == "succeeded"
    looks = list(StepRun.objects.filter(operation=op, step="p2").order_by("attempt"))
    assert [r.outcome for r in looks[:-1]] == ["look"] * (len(looks) - 1)
    assert looks[-1].outcome == "done"
    assert 2 <= len(looks) <= 8  # 0.3 s growing to 1 s over 2 s, not a look per tick
    assert op.steps["p2"]["looks"] == len(looks) - 1
    # Every look was a short task: no look held a worker for the interval.
    assert all(r.duration < 1.0 for r in looks)
    assert [s for s, kind, _ in sagas.effects(str(op.pk), "run")] == ["p1", "p3"]


def test_more_waits_than_worker_processes_leave_the_worker_free_for_other_sagas():
    # Six operations poll for 4 s each on a worker with two processes; a saga started after them
    # finishes while they all still wait (were each wait holding a process, it would queue behind).
    waiting = [start_polls(ready_after=4.0) for _ in range(6)]
    with transaction.atomic():
        other = runner.start(kind="test_five", data={"plan": {}})
    done = wait_final(other.pk, timeout=20)
    assert done.state == "succeeded"
    states = Operation.objects.filter(pk__in=[op.pk for op in waiting]).values_list("state", flat=True)
    assert "succeeded" not in states
    finals = [wait_final(op.pk, timeout=40) for op in waiting]
    assert [op.state for op in finals] == ["succeeded"] * 6
    assert max(op.finished_at for op in finals) > done.finished_at


@pytest.mark.brokers
def test_the_polling_clock_survives_a_worker_killed_between_looks(celery_worker):
    op = start_polls(ready_after=3.0)
    deadline = time.monotonic() + 20
    while StepRun.objects.filter(operation=op, step="p2", outcome="look").count() < 2:
        assert time.monotonic() < deadline, "the step never looked twice"
        time.sleep(0.05)
    since = Operation.objects.get(pk=op.pk).steps["p2"]["polling_since"]
    celery_worker.kill()
    celery_worker.start()
    op = wait_final(op.pk, timeout=60)
    assert op.state == "succeeded"
    assert op.steps["p2"]["polling_since"] == since  # the same clock, not a new one after the crash
    last_look = StepRun.objects.filter(operation=op, step="p2", outcome="done").get()
    assert last_look.started_at.timestamp() - since >= 3.0


def test_a_step_still_not_ready_at_its_poll_deadline_times_the_saga_out_and_undoes_it():
    op = wait_final(start_polls(ready_after=60.0, poll_timeout=1.5).pk, timeout=30)
    assert op.state == "timed_out"
    assert op.error_message.startswith("Polling p2 did not finish in time: not ready after")
    assert [s for s, _, _ in sagas.effects(str(op.pk), "compensate")] == ["p1"]
    looks = StepRun.objects.filter(operation=op, step="p2")
    assert looks.filter(outcome="look").exists()
    assert looks.filter(outcome="failed").count() == 1


def test_the_poll_policy_grows_the_interval_and_stays_within_its_lateness():
    policy = PollPolicy(interval=2.0, multiplier=2.0, max_interval=30.0, lateness=0.1)
    assert policy.delay(1, 2.0) == 2.0
    assert policy.delay(3, 14.0) == 2.0  # 10 % of 14 s is less than the first interval
    assert policy.delay(5, 60.0) == 6.0  # a 60 s build is seen at most 6 s late
    assert policy.delay(10, 3600.0) == 30.0
