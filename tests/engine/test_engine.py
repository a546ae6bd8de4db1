"""The saga engine against PostgreSQL, a real broker (Redis, or RabbitMQ: `-m brokers` in CI) and a real
Celery worker process."""

import time

import pytest

from provisioning.models import Operation, StepRun
from provisioning.saga.definition import saga_for
from provisioning.services import operation_signal
from tests import sagas
from tests.conftest import lose_broker_messages
from tests.engine.helpers import send_again, start, wait_final, wait_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(autouse=True)
def side_effect_table():
    sagas.ensure_table()


def test_it_completes_a_five_step_saga():
    op = wait_final(start("test_five").pk, sweep=False)
    assert op.state == "succeeded"
    assert [s for s, kind, _ in sagas.effects(str(op.pk), "run")] == ["s1", "s2", "s3", "s4", "s5"]
    assert op.data["s5"] == 1
    assert op.message == "Done."


def test_it_retries_a_step_that_asks_twice_then_succeeds():
    op = wait_final(start("test_five", {"s2": ["retry:0.5", "retry:0.7", "done"]}).pk, sweep=False)
    assert op.state == "succeeded"
    runs = list(StepRun.objects.filter(operation=op, step="s2").order_by("attempt"))
    assert [(r.attempt, r.outcome, r.retry_delay) for r in runs] == [
        (1, "retry", 0.5),
        (2, "retry", 0.7),
        (3, "done", None),
    ]
    assert runs[1].started_at >= runs[0].finished_at
    assert (runs[1].started_at - runs[0].finished_at).total_seconds() >= 0.45
    assert op.steps["s2"]["attempts"] == 3


def test_it_compensates_finished_steps_in_reverse_order_on_a_permanent_failure():
    op = wait_final(start("test_five", {"s4": ["fail"]}).pk)
    assert op.state == "failed"
    assert op.error_message == "s4 failed as planned"
    assert [s for s, _, _ in sagas.effects(str(op.pk), "compensate")] == ["s3", "s2", "s1"]
    assert [s for s, _, _ in sagas.effects(str(op.pk), "run")] == ["s1", "s2", "s3"]
    assert {n: op.steps[n]["status"] for n in ("s1", "s2", "s3", "s4", "s5")} == {
        "s1": "compensated",
        "s2": "compensated",
        "s3": "compensated",
        "s4": "failed",
        "s5": "pending",
    }


def test_it_runs_a_parallel_group_as_a_chord_and_waits_for_all_of_it():
    plan = {"b1": ["sleep:0.5"], "b2": ["sleep:1.5"], "b3": ["sleep:0.2"]}
    op = wait_final(start("test_parallel", plan).pk, sweep=False)
    assert op.state == "succeeded"
    rows = sagas.effects(str(op.pk))
    finished = {s: at for s, kind, at in rows if kind == "finish"}
    started = {s: at for s, kind, at in rows if kind == "start"}
    assert started["c"] >= max(finished["b1"], finished["b2"], finished["b3"])
    # With two worker processes, at least two of the group ran at the same time.
    assert started["b2"] < finished["b1"] or started["b1"] < finished["b2"]


def test_it_resumes_a_waiting_step_on_its_signal():
    op = start("test_five", {"s3": ["wait:approve:30"]})
    waiting = wait_state(op.pk, "waiting")
    assert waiting.waiting_for == "approve" and waiting.instructions == "send approve"
    operation_signal(operation=waiting, name="approve", payload={"by": "tester"})
    op = wait_final(op.pk, sweep=False)
    assert op.state == "succeeded"
    assert op.data["s3_signal"]["by"] == "tester"


def test_it_keeps_a_signal_sent_before_the_step_waits():
    op = start("test_five", {"s1": ["sleep:1"], "s3": ["wait:approve:30"]})
    operation_signal(operation=op, name="approve", payload={"early": True})
    op = wait_final(op.pk, sweep=False)
    assert op.state == "succeeded"
    assert op.data["s3_signal"]["early"] is True
    assert not StepRun.objects.filter(operation=op, step="s3", outcome="wait").exists()


def test_it_takes_the_timeout_path_when_a_wait_deadline_passes():
    op = wait_final(start("test_five", {"s3": ["wait:approve:1"]}).pk)
    assert op.state == "timed_out"
    assert "timed out" in op.error_message
    assert [s for s, _, _ in sagas.effects(str(op.pk), "compensate")] == ["s2", "s1"]


@pytest.mark.brokers
def test_it_completes_a_step_exactly_once_when_the_worker_is_killed_in_its_middle(celery_worker):
    op = start("test_five", {"s3": ["sleep:3"]})
    wait_for_effect(op.pk, "s3", "run")
    celery_worker.kill()
    celery_worker.start()
    op = wait_final(op.pk, timeout=60)
    assert op.state == "succeeded"
    assert [s for s, _, _ in sagas.effects(str(op.pk), "run")] == ["s1", "s2", "s3", "s4", "s5"]
    assert StepRun.objects.filter(operation=op, step="s3", outcome="lost").count() == 1


@pytest.mark.brokers
def test_it_completes_every_saga_when_the_broker_loses_its_messages_while_they_run(celery_worker):
    ops = [start("test_five", {"s2": ["sleep:0.5", "done"], "s4": ["retry:1", "done"]}) for _ in range(20)]
    time.sleep(0.8)
    lose_broker_messages()
    finals = [wait_final(op.pk, timeout=90) for op in ops]
    assert [op.state for op in finals] == ["succeeded"] * 20
    for op in finals:
        assert [s for s, _, _ in sagas.effects(str(op.pk), "run")] == ["s1", "s2", "s3", "s4", "s5"]


@pytest.mark.brokers
def test_each_step_acts_once_when_every_message_is_delivered_many_times():
    # The rest of each saga sent again, and each step of its current group alone, every 0.1 s while
    # it runs: the worker's two processes take the duplicates at the same time, the claims let one act.
    ids = [
        start(*plan).pk
        for plan in [
            ("test_five", {"s2": ["sleep:0.3"], "s3": ["retry:0.3", "done"]}),
            ("test_parallel", {"b1": ["sleep:0.3"], "b2": ["retry:0.3", "done"]}),
        ]
        * 5
    ]
    resent = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        active = [op for op in Operation.objects.filter(pk__in=ids) if not op.is_terminal]
        if not active:
            break
        for op in active:
            resent += send_again(op)
        time.sleep(0.1)
    finals = [wait_final(op_id, timeout=30) for op_id in ids]
    assert [op.state for op in finals] == ["succeeded"] * len(ids)
    for op in finals:
        acted = [step for step, _, _ in sagas.effects(str(op.pk), "start")]
        assert sorted(acted) == sorted(s.name for s in saga_for(op.kind).steps), acted  # each once
        done = StepRun.objects.filter(operation=op, outcome="done").values_list("step", flat=True)
        assert sorted(done) == sorted(acted)
    assert resent > len(ids) * 3


def wait_for_effect(op_id, step: str, kind: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s == step for s, _, _ in sagas.effects(str(op_id), kind)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{step} never recorded {kind}")
