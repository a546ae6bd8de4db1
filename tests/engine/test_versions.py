"""A saga's definition changes between two worker versions (tests/sagas_versions.py): operations
started on the old workers finish correctly on the new ones — on the steps they started with, or
moved by the mapping the saga declares — and one whose definition is gone is held, with a message
the API and the admin show, until a worker that has its definition comes back."""

import time

import pytest
from django.db import transaction

from provisioning.models import Operation, StepRun
from provisioning.saga import runner
from provisioning.services import operation_signal
from tests import sagas, sagas_versions  # noqa: F401  (registers the versioned sagas here too)
from tests.conftest import ARTIFACTS, WorkerProcess
from tests.engine.helpers import wait_state

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_AT_B = {"b": ["wait:go:300"]}


@pytest.fixture
def deploy(_session_worker, worker_env):
    """Workers of a given definition, in place of the session's worker (stopped meanwhile; the next
    test that needs it starts it again)."""
    sagas.ensure_table()
    _session_worker.stop()
    started: list[WorkerProcess] = []

    def run(definition: str) -> WorkerProcess:
        for worker in started:
            worker.stop()
        env = {**worker_env, "TEST_SAGA_DEFINITION": definition}
        worker = WorkerProcess(env, ARTIFACTS / "logs", name=f"definition-{definition}").start()
        started.append(worker)
        return worker

    yield run
    for worker in started:
        worker.stop()


def start(kind: str, version: str | None = None, plan: dict | None = None) -> Operation:
    with transaction.atomic():
        return runner.start(kind=kind, version=version, data={"plan": plan or {}})


def done_steps(op: Operation) -> list[str]:
    return list(
        StepRun.objects.filter(operation=op, outcome="done")
        .order_by("finished_at")
        .values_list("step", flat=True)
    )


def wait_final(op_id, timeout: float = 60.0) -> Operation:
    """Wait for the end without sweeping here: this process has both definitions, the workers one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = Operation.objects.get(pk=op_id)
        if op.is_terminal:
            return op
        time.sleep(0.2)
    raise AssertionError(f"{op_id} still {op.state}: {op.message}")


def test_operations_started_on_the_old_definition_finish_correctly_on_the_new_workers(
    deploy, hostmaster, client, settings
):
    settings.STORAGES = {  # no collectstatic manifest in tests
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    deploy("1")
    kept = start("test_kept", "1", WAIT_AT_B)
    upgraded = start("test_upgraded", "1", WAIT_AT_B)
    dropped = start("test_dropped", "1", WAIT_AT_B)
    for op in (kept, upgraded, dropped):
        assert wait_state(op.pk, "waiting").waiting_for == "go"
        assert Operation.objects.get(pk=op.pk).definition["version"] == "1"

    deploy("2")  # the old workers are gone; the new ones know version 1 of test_kept only
    fresh = start("test_kept")
    for op in (kept, upgraded, dropped):
        operation_signal(operation=Operation.objects.get(pk=op.pk), name="go")

    # Kept: it finishes on the steps it started with, while a new one runs the new steps.
    assert wait_final(kept.pk).state == "succeeded"
    assert done_steps(kept) == ["a", "b", "c"]
    assert wait_final(fresh.pk).state == "succeeded"
    assert done_steps(fresh) == ["a", "x", "c", "b"]
    # Upgraded: moved to version 2 by the saga's mapping (b is b2 there), then finished on it.
    op = wait_final(upgraded.pk)
    assert op.state == "succeeded", op.message
    assert op.definition["version"] == "2"
    assert done_steps(op) == ["a", "b2", "c", "d"]
    assert op.steps["b2"]["status"] == "done" and "b" not in op.steps

    # Dropped: no worker has its definition: it is held, never run on the wrong step.
    deadline = time.monotonic() + 30
    while (op := Operation.objects.get(pk=dropped.pk)).waiting_for != "definition":
        assert time.monotonic() < deadline, op.message
        time.sleep(0.2)
    assert op.state == "waiting"
    assert done_steps(op) == ["a"]
    assert (
        "Held for a hostmaster" in op.instructions and "version 1 of the saga test_dropped" in op.instructions
    )
    body = hostmaster[1].get(f"/api/operations/{op.pk}/").json()
    assert body["state"] == "waiting"
    assert body["waiting"]["signal"] == "definition"
    assert "Held for a hostmaster" in body["waiting"]["instructions"], body
    assert "Held for a hostmaster" in body["message"]
    client.force_login(hostmaster[0])
    page = client.get(f"/admin/provisioning/operation/{op.pk}/change/")
    assert page.status_code == 200
    assert b"Held for a hostmaster" in page.content

    # A deploy that brings version 1 back: the sweeper's next look moves it on, on its own steps.
    deploy("1")
    deadline = time.monotonic() + 60
    while not (op := Operation.objects.get(pk=dropped.pk)).is_terminal:
        assert time.monotonic() < deadline, op.message
        runner.sweep()
        time.sleep(0.3)
    assert op.state == "succeeded", op.message
    assert done_steps(op) == ["a", "b", "c"]
