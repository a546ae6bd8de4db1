"""The engine under fire, with the test sagas of tests/sagas.py (each step records its side effects in a
table, so a step that acted twice shows).

Two workers with different node names consume the same queues, as two machines would, while every
message is delivered again and again (the rest of each saga re-sent, each step of its current group
sent alone, the sweeper run eagerly): each step's side effect must still happen exactly once. And a
saga started while the broker is down is stored and answered, and runs once the broker is back."""

from __future__ import annotations

import collections
import time

import pytest

from provisioning.models import Operation, StepRun
from provisioning.saga import runner
from provisioning.saga.definition import saga_for
from tests import sagas
from tests.conftest import WorkerProcess
from tests.engine.helpers import send_again, start, wait_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

SAGAS = 30


@pytest.fixture
def two_workers(real_services, drill_env, drill_logdir):
    workers = [WorkerProcess(drill_env, drill_logdir, name=name) for name in ("alpha", "beta")]
    for worker in workers:
        worker.start()
    yield workers
    for worker in workers:
        worker.stop()


def plan_for(index: int) -> tuple[str, dict]:
    if index % 2:
        return "test_parallel", {"b1": ["sleep:0.3"], "b2": ["retry:0.3", "done"], "c": ["sleep:0.2"]}
    return "test_five", {"s2": ["sleep:0.3"], "s3": ["retry:0.3", "done"], "s4": ["sleep:0.2"]}


def test_each_step_runs_exactly_once_with_two_workers_and_every_message_delivered_many_times(two_workers):
    sagas.ensure_table()
    ids = []
    for index in range(SAGAS):
        kind, plan = plan_for(index)
        ids.append(start(kind, plan).pk)
    resent = sweeps = 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        active = [op for op in Operation.objects.filter(pk__in=ids) if not op.is_terminal]
        if not active:
            break
        for op in active:
            resent += send_again(op)
        runner.sweep()
        sweeps += 1
        time.sleep(0.1)

    ops = list(Operation.objects.filter(pk__in=ids))
    states = collections.Counter(op.state for op in ops)
    starts = collections.Counter()  # (operation, step) -> how often the step's body acted
    for op in ops:
        for step, _kind, _ in sagas.effects(str(op.pk), "start"):
            starts[(str(op.pk), step)] += 1
    done_runs = collections.Counter(
        StepRun.objects.filter(operation_id__in=ids, outcome="done").values_list("operation_id", "step")
    )
    steps_expected = sum(len(saga_for(op.kind).steps) for op in ops)
    served = {w.name: w.log_path.read_text(errors="replace").count(" succeeded in ") for w in two_workers}
    print(
        "\n".join(
            [
                "",
                "two workers, the same queues, every message delivered many times",
                f"  {'sagas':<42}{len(ops):>8}",
                f"  {'final states':<42}{dict(states)!s:>8}",
                f"  {'steps expected':<42}{steps_expected:>8}",
                f"  {'steps whose body acted':<42}{len(starts):>8}",
                f"  {'most actions of one step':<42}{max(starts.values()):>8}",
                f"  {'most done records of one step':<42}{max(done_runs.values()):>8}",
                f"  {'messages sent again':<42}{resent:>8}",
                f"  {'eager sweeps':<42}{sweeps:>8}",
                *(f"  {'tasks run by ' + name:<42}{count:>8}" for name, count in served.items()),
            ]
        )
    )
    assert states == {"succeeded": SAGAS}, [(op.pk, op.state, op.message) for op in ops if op.is_terminal]
    assert len(starts) == steps_expected
    assert set(starts.values()) == {1}, {k: v for k, v in starts.items() if v != 1}
    assert set(done_runs.values()) == {1} and len(done_runs) == steps_expected
    assert all(count > 0 for count in served.values()), served  # both workers took part
    assert resent > SAGAS * 3


def test_a_saga_started_while_the_broker_is_down_is_kept_answered_and_run_once_it_is_back(
    chaos_servers, two_workers
):
    sagas.ensure_table()
    redis = chaos_servers[1]
    redis.stop()
    try:
        op = start("test_five")  # its transaction commits; the message cannot go out, and no error may
    finally:
        redis.start()
    op = wait_final(op.pk, timeout=60)  # the sweeper (run here, as beat would) sends what was never sent
    assert op.state == "succeeded"
    assert [s for s, _, _ in sagas.effects(str(op.pk), "run")] == ["s1", "s2", "s3", "s4", "s5"]
