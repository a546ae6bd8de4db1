"""The sweeper: every tick moves on the operations whose `sweep_at` passed (lost messages, due retries
and looks, passed wait deadlines and time limits, stale heartbeats, stalled compensation), O(due) by
a partial index. Any number of beats may send the tick; `tick_lock` lets one run at a time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from provisioning.choices import OperationState, Outcome, StepStatus
from provisioning.logs import log_context
from provisioning.models import Operation, StepRun
from provisioning.saga.enqueue import bounded, enqueue, heartbeat_timeout, redrive_at
from provisioning.saga.settle import commit_plan
from provisioning.saga.steps import Step
from provisioning.saga.store import dt, save_row, step_state, ts
from provisioning.saga.versions import hold, is_held, release, resolve, saga_of, saga_view

log = logging.getLogger("provisioning.saga")


# Any number of beats (or workers) may send the tick; one runs at a time across machines.
_TICK_LOCK = 0x5A6A_5EE9


@contextmanager
def tick_lock() -> Iterator[bool]:
    """Whether this process may tick now: a PostgreSQL advisory lock, held by the session only while
    the tick runs (a worker killed mid-tick loses its session and the lock with it). Databases with
    no such lock (SQLite: one machine) always may; the tick's claim still keeps ticks apart."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_TICK_LOCK])
        mine = bool(cursor.fetchone()[0])
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_TICK_LOCK])


def sweep(batch: int | None = None) -> int:
    """Move on every operation whose sweep time passed: lost messages, due retries, passed wait
    deadlines and operation timeouts, stale heartbeats, stalled compensation. Costs O(due)."""
    now = timezone.now()
    due = list(
        Operation.objects.filter(sweep_at__lte=now)
        .order_by("sweep_at")
        .values_list("pk", flat=True)[: batch or settings.SAGA_SWEEP_BATCH]
    )
    for op_id in due:
        with log_context(operation=op_id):
            try:
                sweep_one(op_id)
            except Exception:
                log.exception("operation %s: the sweeper could not move it on", op_id)
    return len(due)


def sweep_one(op_id) -> None:
    from django.db import connection

    now = timezone.now()
    with transaction.atomic():
        qs = Operation.objects.select_for_update(
            skip_locked=connection.features.has_select_for_update_skip_locked
        )
        op = qs.filter(pk=op_id, sweep_at__lte=now).first()
        if op is None:
            return  # moved on meanwhile, or a worker holds it right now
        if op.is_terminal:
            Operation.objects.filter(pk=op.pk).update(sweep_at=None)
            return
        held = is_held(op)
        if op.state == OperationState.RUNNING and saga_of(op) is None:
            return _running_elsewhere(op, now)
        saga = resolve(op, now)
        if saga is None:
            if held:  # still no definition for it here: look again later
                op.sweep_at = now + timedelta(seconds=settings.SAGA_HELD_RECHECK)
                save_row(op, saga_view(op), reason=op.instructions[:480])
            return
        if held:
            release(op, saga, now)
            return
        if op.state == OperationState.COMPENSATING:
            op.sweep_at = redrive_at(now)
            save_row(op, saga)
            enqueue(op, saga)
            return
        if op.deadline and op.deadline <= now and not op.end_state:
            op.end_state = OperationState.TIMED_OUT
            op.error_message = (
                f"The operation did not finish within its time limit ({op.deadline:%Y-%m-%d %H:%M:%S} UTC); "
                "what it had created was removed. Submit it again, or ask a hostmaster to raise the limit."
            )
        group = saga.groups()[op.position]
        if op.state == OperationState.RUNNING:
            running = [s for s in group if step_state(op, s.name)["status"] == StepStatus.RUNNING]
            timeout = max((heartbeat_timeout(s) for s in running), default=0.0)
            if op.heartbeat_at is None or op.heartbeat_at + timedelta(seconds=timeout) <= now:
                mark_lost(op, group, now)
            else:
                op.sweep_at = op.heartbeat_at + timedelta(seconds=timeout)
        elif op.state == OperationState.WAITING:
            for step in group:
                st = step_state(op, step.name)
                if st["status"] == StepStatus.WAITING and st.get("wait_deadline", 0) <= ts(now):
                    st["status"] = StepStatus.PENDING
                    st["wait_timed_out"] = True
        elif not op.end_state:
            # Pending or retrying and due: the message was lost (broker wiped, worker killed) or the
            # retry waited in the database. Send the rest of the saga again; claims make it act once.
            log.info("operation %s: sending it again (%s)", op.pk, op.state)
            op.sweep_at = bounded(op, redrive_at(now))
            save_row(op, saga)
            enqueue(op, saga)
            return
        commit_plan(op, saga, now)


def _running_elsewhere(op: Operation, now: datetime) -> None:
    """A step of another definition runs (on a worker of that code): wait for its heartbeat as for any
    step; once it stops, the operation is held until a worker with its definition comes back."""
    stale = (
        op.heartbeat_at is None or op.heartbeat_at + timedelta(seconds=settings.SAGA_HEARTBEAT_TIMEOUT) <= now
    )
    if not stale:
        op.sweep_at = op.heartbeat_at + timedelta(seconds=settings.SAGA_HEARTBEAT_TIMEOUT)
        save_row(op, saga_view(op))
        return
    for st in op.steps.values():
        if st.get("status") == StepStatus.RUNNING:
            st["status"], st["next_run_at"] = StepStatus.RETRYING, ts(now)
            st.pop("started_at", None)
    hold(op, "the worker that ran one of its steps stopped", now)


def mark_lost(op: Operation, group: list[Step], now: datetime) -> None:
    for step in group:
        st = step_state(op, step.name)
        if st["status"] != StepStatus.RUNNING:
            continue
        StepRun.objects.create(
            operation=op,
            step=step.name,
            position=op.position,
            attempt=st["attempts"],
            started_at=dt(st.get("started_at") or ts(now)),
            finished_at=now,
            outcome=Outcome.LOST,
            message="The worker stopped answering (killed or hung).",
            worker=st.get("worker", ""),
        )
        st.pop("started_at", None)
        # Looks are not failures (as in outcome.py): a step that looked many times before its worker
        # died has used up only the attempts that were not looks.
        deaths = st["attempts"] - st.get("looks", 0)
        if deaths >= step.retry.max_attempts:
            st["status"] = StepStatus.FAILED
            op.end_state = OperationState.FAILED
            op.error_message = (
                f"{step.title or step.name}: the worker running it died {deaths} times. "
                "The finished steps were undone; a hostmaster should look at the workers."
            )
        else:
            st["status"] = StepStatus.RETRYING
            st["next_run_at"] = ts(now)
