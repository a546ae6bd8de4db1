"""Claim and record: a worker takes a step with a compare-and-set on the row, runs it with no
transaction open, then records its outcome (and claims the next step of its segment) in one short
transaction. A duplicate delivery finds the step done or taken and does nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from provisioning.choices import OperationState, Outcome, StepStatus
from provisioning.logs import log_context
from provisioning.models import Operation, Signal, StepRun
from provisioning.saga.context import StepContext
from provisioning.saga.definition import saga_for
from provisioning.saga.enqueue import bounded, enqueue, heartbeat_timeout
from provisioning.saga.outcome import apply_outcome, outcome_of
from provisioning.saga.settle import Plan, settle
from provisioning.saga.steps import Step
from provisioning.saga.store import EARLY_TOLERANCE, WORKER, insert_run, load, save_row, step_state, ts
from provisioning.saga.versions import definition_moved, saga_of

log = logging.getLogger("provisioning.saga")


def start_attempt(op: Operation, step: Step, now: datetime) -> int:
    """Mark `step` as running on this worker (in memory; the caller saves)."""
    st = step_state(op, step.name)
    st["status"] = StepStatus.RUNNING
    st["attempts"] = st.get("attempts", 0) + 1
    st["started_at"] = ts(now)
    st["worker"] = WORKER
    op.run()
    op.heartbeat_at = now
    op.sweep_at = bounded(op, now + timedelta(seconds=heartbeat_timeout(step)))
    return st["attempts"]


def claimable(op: Operation | None, position: int, name: str, now: datetime) -> tuple[bool, bool]:
    """(may this worker run the step now, may the chain go on without it)."""
    if op is None or op.is_terminal:
        return False, False
    if op.position > position:
        return False, True
    if op.position < position or op.state == OperationState.COMPENSATING:
        return False, False
    st = step_state(op, name)
    if st["status"] == StepStatus.DONE:
        return False, True
    if op.end_state:
        return False, False
    due = st["status"] == StepStatus.PENDING or (
        st["status"] == StepStatus.RETRYING and st.get("next_run_at", 0) <= ts(now) + EARLY_TOLERANCE
    )
    return due, False  # not due: running elsewhere, waiting, or later


def claim(
    op_id: str, position: int, name: str, loaded: Operation | None = None
) -> tuple[bool, StepContext | None]:
    """Take the step for this worker with a compare-and-set on the row's version, or say why not:
    (whether the chain may go on, the context to run it with). `loaded`: the row, just read."""
    for _ in range(20):
        now = timezone.now()
        op, loaded = loaded or load(op_id), None
        saga = saga_of(op) if op is not None and not op.is_terminal else None
        if saga is None:
            if op is not None and not op.is_terminal:
                definition_moved(op_id)  # its definition is not this code's: upgrade or hold
            return False, None
        due, go_on = claimable(op, position, name, now)
        if not due:
            return go_on, None
        if position >= len(saga.groups()) or name not in {s.name for s in saga.groups()[position]}:
            return False, None  # a message of another definition: the row's position has another step
        step = saga.step(name)
        version = op.version
        attempt = start_attempt(op, step, now)
        if step.reads_only and len(saga.groups()[position]) == 1:
            # A step that only reads (a look at a build) needs no claim, so it costs one commit: it
            # runs on the row as read here, and its outcome is recorded by a compare-and-set against
            # that version (`record`). A duplicate that recorded first wins; this outcome is dropped.
            return True, StepContext(op, saga, step, attempt)
        with transaction.atomic():
            if save_row(op, saga, expected_version=version):
                return True, StepContext(op, saga, step, attempt)
        # Somebody changed the row meanwhile (a sibling, a signal, the sweeper): look again.
    return False, None


def execute_segment(op_id: str, kind: str, positions: list[int]) -> bool:
    """Run consecutive single steps one after the other. Recording a step and claiming the next one
    are one transaction, so a step costs one write commit on this path. Returns whether the Celery
    chain goes on (every step finished)."""
    # The steps at these positions are the operation's own definition's (not necessarily the code's).
    op = load(op_id)
    saga = saga_of(op) if op is not None and not op.is_terminal else None
    if saga is None:
        if op is not None and not op.is_terminal:
            definition_moved(op_id)
        return False
    groups = saga.groups()
    if any(position >= len(groups) for position in positions):
        return False  # sent for another definition; the sweeper sends the row's own
    index = 0
    go_on, ctx = claim(op_id, positions[0], groups[positions[0]][0].name, loaded=op)
    while True:
        if ctx is None:
            if not go_on:
                return False
            index += 1  # already done by an earlier delivery: look at the next one
            if index == len(positions):
                return True
            go_on, ctx = claim(op_id, positions[index], groups[positions[index]][0].name)
            continue
        following = groups[positions[index + 1]][0] if index + 1 < len(positions) else None
        go_on, ctx = _run(ctx, claim_next=following)
        if ctx is None and go_on and following is None:
            return True
        if ctx is not None:
            index += 1


def run_here(op: Operation, steps: int) -> None:
    """Run up to `steps` leading steps of an operation started with `send=False` in this process (a
    request whose answer should already say what the saga waits for), then send the rest to the
    workers. Call it after the transaction that started the operation has committed.

    Only steps that only read (`Step.reads_only`) run here. With nothing to undo they need no claim:
    their outcomes are recorded together, in one transaction, by a compare-and-set on the row as
    `start` left it. If somebody changed the row meanwhile (the sweeper sent the operation to a worker,
    a signal came), the outcomes are dropped and the workers run those steps again."""
    saga = saga_for(op.kind)
    groups = saga.groups()
    version = op.version
    runs: list[StepRun] = []
    consumed: list[int] = []
    plan = Plan(go_on=True)
    while plan.go_on and op.position < min(steps, len(groups)):
        group = groups[op.position]
        if len(group) != 1 or not group[0].reads_only:
            break
        ctx = StepContext(op, saga, group[0], start_attempt(op, group[0], timezone.now()))
        with log_context(operation=op.pk, kind=op.kind, step=ctx.step.name, attempt=ctx.attempt):
            result = outcome_of(ctx)
        now = timezone.now()
        runs.append(apply_outcome(op, ctx, result, now))
        consumed += ctx.consumed_signals
        plan = settle(op, saga, now, runs[-1].message if runs[-1].outcome != Outcome.DONE else "")
    with transaction.atomic():
        if runs and save_row(op, saga, reason=plan.reason, expected_version=version):
            for run in runs:
                insert_run(run)
            if consumed:
                Signal.objects.filter(pk__in=consumed).update(consumed_at=timezone.now())
            if plan.go_on or plan.send:
                enqueue(op, saga, countdown=plan.countdown)
        else:
            # Nothing ran here, or the row moved on without us: the workers take it from the row (a
            # message too many is harmless, the claims run each step once).
            op = load(str(op.pk))
            if op is not None and op.state == OperationState.PENDING and not op.end_state:
                enqueue(op, saga)
            return
    for run in runs:
        log.info("operation %s: step %s attempt %s -> %s", op.pk, run.step, run.attempt, run.outcome)


def execute_step(op_id: str, position: int, name: str) -> bool:
    """Run one step of one operation, once (a chord member). Returns whether the chain should go on."""
    go_on, ctx = claim(op_id, position, name)
    if ctx is None:
        return go_on
    go_on, _ = _run(ctx)
    return go_on


def _run(ctx: StepContext, claim_next: Step | None = None) -> tuple[bool, StepContext | None]:
    # Every line logged while the step runs and is recorded names the operation, the step, the attempt.
    with log_context(
        operation=ctx.operation.pk, kind=ctx.operation.kind, step=ctx.step.name, attempt=ctx.attempt
    ):
        return _run_and_record(ctx, claim_next)


def _run_and_record(ctx: StepContext, claim_next: Step | None) -> tuple[bool, StepContext | None]:
    return record(ctx, outcome_of(ctx), claim_next)


def record(ctx: StepContext, result, claim_next: Step | None) -> tuple[bool, StepContext | None]:
    """Record the outcome (and, if the step finished and `claim_next` is given, claim the next step)
    in one transaction. Returns (whether the chain may go on, the next step's context)."""
    op = ctx.operation
    expected: int | None = op.version  # first try: compare-and-set against the row as we left it
    while True:
        now = timezone.now()
        with transaction.atomic():
            if expected is None:
                op = Operation.objects.select_for_update().get(pk=op.pk)
                st = step_state(op, ctx.step.name)
                if st["status"] != StepStatus.RUNNING or st.get("attempts") != ctx.attempt:
                    # The sweeper took this attempt for lost and gave the step to another worker, or
                    # (a step that only reads, unclaimed) the row moved on meanwhile: whoever moved
                    # it sent what follows, so this outcome is dropped.
                    log.warning(
                        "operation %s: step %s attempt %s was superseded", op.pk, ctx.step.name, ctx.attempt
                    )
                    return False, None
            run = apply_outcome(op, ctx, result, now)
            plan = settle(op, ctx.saga, now, run.message if run.outcome != Outcome.DONE else "")
            next_ctx = None
            if plan.go_on and claim_next is not None:
                attempt = start_attempt(op, claim_next, now)
                next_ctx = StepContext(op, ctx.saga, claim_next, attempt)
            if save_row(op, ctx.saga, reason=plan.reason, expected_version=expected):
                insert_run(run)
                if ctx.consumed_signals:
                    Signal.objects.filter(pk__in=ctx.consumed_signals).update(consumed_at=now)
                if plan.send:
                    enqueue(op, ctx.saga, countdown=plan.countdown)
                break
        # The row changed while the step ran (a sibling finished, a signal, a cancel): redo with the lock.
        expected = None
        op = ctx.operation
    log.info("operation %s: step %s attempt %s -> %s", op.pk, ctx.step.name, ctx.attempt, run.outcome)
    if next_ctx is not None:
        next_ctx.operation = op
        next_ctx.data = dict(op.data)
    return plan.go_on, next_ctx


def heartbeat(op_id, step: Step) -> None:
    now = timezone.now()
    Operation.objects.filter(pk=op_id, state=OperationState.RUNNING).update(
        heartbeat_at=now, sweep_at=now + timedelta(seconds=heartbeat_timeout(step))
    )
