"""The runner: the engine's front door. It starts operations and waits for them; the rest lives in a
module per concern, and every name other code uses is importable from here.

- `store`: reading and writing the row (and the subject's status), the StepRun timeline
- `status`: what an operation shows people
- `enqueue`: the rest of the saga as a Celery canvas, sent on commit; the sweeper's clocks
- `claim`: claiming a step, running it outside any transaction, recording its outcome; `run_here`
- `outcome`: what a step's result does to its state (looks, retries, waits, failures)
- `settle`: the operation's state from its current group, and what follows
- `compensation`: undoing finished steps in reverse order
- `sweeper`: the tick that moves on whatever is due, one tick at a time across machines

Because the canvas is always rebuilt from the row, one code path starts a saga, resumes it after a
signal and re-drives it after a crash. Every change to the row is a compare-and-set on its version
or happens with the row locked for a moment (select_for_update), never across a step's I/O, and
writes the subject's status in the same transaction through the saga's `write_status` hook.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from provisioning.choices import StepStatus
from provisioning.models import Operation
from provisioning.saga.claim import (
    claim,
    execute_segment,
    execute_step,
    heartbeat,
    run_here,
)
from provisioning.saga.compensation import compensate_next
from provisioning.saga.definition import saga_for
from provisioning.saga.enqueue import bounded, canvas, enqueue, redrive_at
from provisioning.saga.settle import Plan, commit_plan, join_group, settle
from provisioning.saga.status import describe, status_view
from provisioning.saga.store import load, step_state
from provisioning.saga.sweeper import sweep, sweep_one, tick_lock

__all__ = [
    "Plan",
    "canvas",
    "commit_plan",
    "compensate_next",
    "enqueue",
    "execute_segment",
    "execute_step",
    "heartbeat",
    "join_group",
    "run_here",
    "saga_for",
    "settle",
    "start",
    "status_view",
    "step_state",
    "sweep",
    "sweep_one",
    "tick_lock",
    "wait_for",
]

# Older names the tests reach for.
_claim = claim
_load = load


def start(
    *,
    kind: str,
    subject=None,
    customer=None,
    data: dict | None = None,
    queue: str = "default",
    timeout: timedelta | None = None,
    send: bool = True,
    version: str | None = None,
) -> Operation:
    """Store a new operation and send it to the workers once the caller's transaction commits. With
    `send=False` the caller runs its first steps itself (`run_here`), after the commit; if it never
    does, the sweeper sends the operation once its row is due. The operation records the definition
    it starts on (the current one, or `version` if the code still has it)."""
    saga = saga_for(kind, version)
    now = timezone.now()
    timeout = timeout or saga.timeout
    op = Operation(
        kind=kind,
        customer=customer,
        subject_type=subject._meta.label_lower if subject is not None else "",
        subject_id=str(subject.pk) if subject is not None else "",
        queue=queue,
        data=data or {},
        steps={s.name: {"status": StepStatus.PENDING, "attempts": 0} for s in saga.steps},
        definition=saga.definition(),
        deadline=now + timeout if timeout else None,
    )
    op.sweep_at = bounded(op, redrive_at(now))
    op.message = describe(op, saga)
    op.save(force_insert=True)
    saga.write_status(op, status_view(op, saga))
    if send:
        enqueue(op, saga)
    return op


def wait_for(op_id, timeout: float = 30.0, poll: float = 0.05) -> Operation:
    """Poll until the operation is final (for commands and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        op = Operation.objects.get(pk=op_id)
        if op.is_terminal or time.monotonic() > deadline:
            return op
        time.sleep(poll)
