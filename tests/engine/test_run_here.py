"""`runner.run_here`: a request runs the leading steps that only read, records them in one commit, and
the workers do the rest; a row that moved on meanwhile wins over what the request found."""

import pytest
from django.db import transaction
from django.db.models import F

from provisioning.models import Operation, StepRun
from provisioning.saga import runner
from provisioning.services import operation_cancel, operation_signal
from tests import sagas
from tests.engine.helpers import wait_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture(autouse=True)
def side_effect_table():
    sagas.ensure_table()


def start_unsent(kind: str, plan: dict | None = None) -> Operation:
    with transaction.atomic():
        return runner.start(kind=kind, data={"plan": plan or {}}, send=False)


def runs_of(op: Operation) -> list[tuple[str, int, str, str]]:
    return list(
        StepRun.objects.filter(operation=op)
        .order_by("id")
        .values_list("step", "attempt", "outcome", "worker")
    )


def test_it_runs_the_reading_steps_here_in_one_commit_and_the_workers_do_the_rest():
    op = start_unsent("test_looks_first")
    runner.run_here(op, steps=5)
    here = Operation.objects.get(pk=op.pk)
    assert here.position == 2 and here.version == op.version  # one write after start's insert
    assert [run[:3] for run in runs_of(op)] == [("r1", 1, "done"), ("r2", 1, "done")]

    op = wait_final(op.pk, sweep=False)
    assert op.state == "succeeded" and op.data["r1"] == 1 and op.data["r2"] == 1
    assert [step for step, kind, _ in sagas.effects(str(op.pk), "run")] == ["w3"]
    assert [run[:3] for run in runs_of(op)] == [("r1", 1, "done"), ("r2", 1, "done"), ("w3", 1, "done")]


def test_it_stops_at_the_step_limit_and_at_the_first_step_that_acts():
    limited = start_unsent("test_looks_first")
    runner.run_here(limited, steps=1)
    assert [run[0] for run in runs_of(limited)] == ["r1"]
    acting = start_unsent("test_five")  # its first step writes: it runs on a worker only
    runner.run_here(acting, steps=5)
    for op in (limited, acting):
        assert wait_final(op.pk, sweep=False).state == "succeeded"
    assert [run[0] for run in runs_of(limited)] == ["r1", "r2", "w3"]
    assert [step for step, kind, _ in sagas.effects(str(acting.pk), "run")] == ["s1", "s2", "s3", "s4", "s5"]


def test_a_step_that_waits_leaves_the_operation_waiting_with_its_instructions():
    op = start_unsent("test_looks_first", {"r2": ["wait:go:60"]})
    runner.run_here(op, steps=5)
    waiting = Operation.objects.get(pk=op.pk)
    assert waiting.state == "waiting" and waiting.instructions == "send go"
    operation_signal(operation=waiting, name="go", payload={"ok": True})
    op = wait_final(op.pk, sweep=False)
    assert op.state == "succeeded" and op.data["r2_signal"]["ok"] is True


def test_an_error_here_is_retried_by_the_workers():
    op = start_unsent("test_looks_first", {"r1": ["error", "done"]})
    runner.run_here(op, steps=5)
    assert Operation.objects.get(pk=op.pk).state == "retrying"
    op = wait_final(op.pk, sweep=False)
    assert op.state == "succeeded"
    assert [run[:3] for run in runs_of(op)][:2] == [("r1", 1, "retry"), ("r1", 2, "done")]


def test_what_it_found_is_dropped_when_the_row_moved_on_meanwhile():
    op = start_unsent("test_looks_first")
    # Somebody else wrote the row after the request read it (the sweeper sending it, say).
    Operation.objects.filter(pk=op.pk).update(version=F("version") + 1)
    runner.run_here(op, steps=5)
    op = wait_final(op.pk, sweep=False)
    assert op.state == "succeeded"
    # Each step recorded once: the worker ran r1 and r2 again, the request's outcomes were not kept.
    assert [run[:3] for run in runs_of(op)] == [("r1", 1, "done"), ("r2", 1, "done"), ("w3", 1, "done")]


def test_a_cancel_that_came_first_wins_and_nothing_is_recorded_here():
    op = start_unsent("test_looks_first")
    operation_cancel(operation=op, reason="changed my mind")
    runner.run_here(op, steps=5)
    op = wait_final(op.pk, sweep=False)
    assert op.state == "cancelled"
    assert not StepRun.objects.filter(operation=op, kind="run").exists()
