"""Canvas and enqueue: "the rest of the saga from the persisted position" as a Celery canvas, sent
once the caller's transaction commits, and the clocks that tell the sweeper when to look again.

Tasks are named, not imported (`provisioning/tasks.py` imports the engine, never the reverse)."""

from __future__ import annotations

from datetime import datetime, timedelta

from celery import chain, chord, signature
from celery.canvas import Signature
from django.conf import settings
from django.db import transaction

from provisioning.choices import OperationState
from provisioning.models import Operation
from provisioning.saga.definition import Saga
from provisioning.saga.steps import Step


def _task(name: str, *args) -> Signature:
    # Immutable: a step's task takes its arguments from the row's position, never a parent's result.
    return signature(name, args=args, immutable=True)


def canvas(op: Operation, saga: Saga) -> Signature | None:
    """The rest of the saga from the persisted position, as a Celery chain: consecutive single steps on
    the same queue travel as one segment task (it claims and records each step on its own, so a crash
    loses nothing, but pays the broker once), and each parallel group is a chord."""
    op_id = str(op.pk)
    parts: list[Signature] = []
    segment: list[int] = []
    segment_queue = ""

    def close_segment() -> None:
        if segment:
            parts.append(
                _task("provisioning.run_steps", op_id, op.kind, list(segment)).set(
                    queue=segment_queue, ignore_result=True
                )
            )
            segment.clear()

    for position, group in enumerate(saga.groups()):
        if position < op.position:
            continue
        if len(group) == 1:
            queue = group[0].queue_for(op.queue)
            if queue != segment_queue:
                close_segment()
            segment.append(position)
            segment_queue = queue
            continue
        close_segment()
        header = [
            _task("provisioning.run_step", op_id, position, step.name).set(queue=step.queue_for(op.queue))
            for step in group
        ]
        parts.append(chord(header, _task("provisioning.join_group", op_id, position).set(queue=op.queue)))
    close_segment()
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else chain(*parts)


def enqueue(op: Operation, saga: Saga, countdown: float | None = None) -> None:
    """Send the rest of the saga once the current transaction commits (outbox: no message for a row
    that was never stored; the sweeper re-sends one that was lost)."""
    if op.state == OperationState.COMPENSATING:
        sig = _task("provisioning.compensate", str(op.pk)).set(queue=op.queue, ignore_result=True)
    else:
        sig = canvas(op, saga)
    if sig is None:
        return
    options = {"countdown": countdown} if countdown else {}
    # Robust: the row is stored and its sweep time set, so a broker that is down must not turn the
    # caller's committed work into an error (an API answering 500 for a booking it kept); the error is
    # logged and the sweeper sends the message once the broker is back.
    transaction.on_commit(lambda: sig.apply_async(**options), robust=True)


def redrive_at(now: datetime, delay: float = 0.0) -> datetime:
    return now + timedelta(seconds=delay + settings.SAGA_REDRIVE_AFTER)


def heartbeat_timeout(step: Step) -> float:
    return step.heartbeat_timeout or settings.SAGA_HEARTBEAT_TIMEOUT


def bounded(op: Operation, when: datetime | None) -> datetime | None:
    """The sweeper must also look at the row when the operation's own deadline passes."""
    if op.deadline and not op.end_state and (when is None or op.deadline < when):
        return op.deadline
    return when
