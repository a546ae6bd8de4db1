"""Settle: derive the operation's state from its current group's steps, and say what follows (the chain
goes on, the rest is sent again after a countdown, or the row waits for the sweeper)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from provisioning.choices import StepStatus
from provisioning.models import Operation
from provisioning.saga.definition import Saga
from provisioning.saga.enqueue import bounded, enqueue, redrive_at
from provisioning.saga.store import dt, save_row, step_state, ts


@dataclass
class Plan:
    """What follows a change: may the chain go on, must the rest be sent again (after a countdown)."""

    go_on: bool = False
    send: bool = False
    countdown: float | None = None
    reason: str = ""


def settle(op: Operation, saga: Saga, now: datetime, reason: str = "") -> Plan:
    """Derive the operation's state from its current group's steps (in memory). The caller saves the
    row and then carries out the plan (`commit_plan` does both)."""
    groups = saga.groups()
    group = groups[op.position]
    statuses = [step_state(op, s.name)["status"] for s in group]
    running = StepStatus.RUNNING in statuses

    if op.end_state:
        if running:
            return Plan(reason=reason)  # the running sibling records its outcome first, then we undo
        op.compensate()
        op.sweep_at = redrive_at(now)
        return Plan(send=True)

    if all(s == StepStatus.DONE for s in statuses):
        op.waiting_for, op.wait_deadline, op.instructions = "", None, ""
        if op.position + 1 >= len(groups):
            op.succeed()
            op.finished_at = now
            op.sweep_at = None
            return Plan()
        op.position += 1
        op.queue_next()
        op.sweep_at = bounded(op, redrive_at(now))
        return Plan(go_on=True)

    if running:
        op.run()
        return Plan(reason=reason)
    if StepStatus.PENDING in statuses:
        op.queue_next()
        op.sweep_at = bounded(op, redrive_at(now))
        return Plan(send=True, reason=reason)
    if StepStatus.RETRYING in statuses:
        due = min(
            step_state(op, s.name).get("next_run_at", 0)
            for s in group
            if step_state(op, s.name)["status"] == StepStatus.RETRYING
        )
        delay = max(0.0, due - ts(now))
        op.retry_later()
        op.next_run_at = dt(due)
        if delay <= settings.SAGA_COUNTDOWN_MAX:
            op.sweep_at = bounded(op, redrive_at(now, delay))
            return Plan(send=True, countdown=delay or None, reason=reason)
        op.sweep_at = bounded(op, dt(due))  # a long wait lives in the database, not in a countdown
        return Plan(reason=reason)
    # Every unfinished step of the group waits for a signal.
    deadlines = [step_state(op, s.name).get("wait_deadline") for s in group]
    op.wait()
    op.sweep_at = bounded(op, dt(min(d for d in deadlines if d)))
    return Plan(reason=reason)


def commit_plan(op: Operation, saga: Saga, now: datetime, reason: str = "") -> None:
    """Settle, save and carry out, for callers that hold the row lock (services, the sweeper)."""
    plan = settle(op, saga, now, reason)
    save_row(op, saga, reason=plan.reason)
    if plan.send:
        enqueue(op, saga, countdown=plan.countdown)


def join_group(op_id: str, position: int) -> bool:
    """The chord's body: the chain goes on only if the whole group finished."""
    op = Operation.objects.filter(pk=op_id).only("position", "state").first()
    return op is not None and op.position > position and not op.is_terminal
