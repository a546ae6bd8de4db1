"""The runner: claims a step, runs it outside any transaction, records its outcome, and turns "the rest
of the saga from the persisted position" into a Celery canvas.

Because the canvas is always rebuilt from the row, one code path starts a saga, resumes it after a
signal and re-drives it after a crash. Every change to the row is a compare-and-set on its version
or happens with the row locked for a moment (select_for_update), never across a step's I/O, and
writes the subject's status in the same transaction through the saga's `write_status` hook.
"""

from __future__ import annotations

import functools
import logging
import socket
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import chain, chord
from celery.canvas import Signature
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from provisioning.choices import TERMINAL_STATES, OperationState, Outcome, StepStatus
from provisioning.logs import log_context
from provisioning.models import Operation, Signal, StepRun
from provisioning.saga.context import StepContext
from provisioning.saga.definition import Saga, StatusView, saga_for
from provisioning.saga.steps import Done, LookAgain, RetryAfter, Step, StepFailed, WaitForSignal

log = logging.getLogger("provisioning.saga")

WORKER = socket.gethostname()
# A message may reach a worker a little before the time the database row names (clocks, rounding).
EARLY_TOLERANCE = 0.5


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.get_current_timezone())


def step_state(op: Operation, name: str) -> dict:
    return op.steps.setdefault(name, {"status": StepStatus.PENDING, "attempts": 0})


# --- Status --------------------------------------------------------------------------------------


def _group_title(group: list[Step]) -> str:
    titles: list[str] = []
    for step in group:
        title = step.title or step.name
        if title not in titles:
            titles.append(title)
    return ", ".join(titles)


def status_view(op: Operation, saga: Saga) -> StatusView:
    groups = saga.groups()
    count = len(groups)
    if op.state == OperationState.SUCCEEDED:
        index, title = count, "done"
    else:
        index = min(op.position, count - 1) + 1
        title = _group_title(groups[index - 1])
    return StatusView(
        state=op.state,
        step=index,
        steps=count,
        title=title,
        message=op.message,
        instructions=op.instructions if op.state == OperationState.WAITING else "",
        error=op.error_message,
    )


def _describe(op: Operation, saga: Saga, reason: str = "") -> str:
    view = status_view(op, saga)
    state = op.state
    if state == OperationState.SUCCEEDED:
        return "Done."
    if state in TERMINAL_STATES:
        return op.error_message or OperationState(state).label
    if state == OperationState.COMPENSATING:
        return f"Undoing the finished steps: {op.error_message}"
    if state == OperationState.WAITING:
        return f"{view.progress}: {reason}" if reason else f"{view.progress}: waiting for {op.waiting_for}"
    if state == OperationState.RETRYING:
        return f"{view.progress} (trying again{': ' + reason if reason else ''})"
    return view.progress


# Every column the engine changes; one UPDATE writes them all, so no change is ever left unsaved.
_ROW_FIELDS = (
    "state",
    "position",
    "steps",
    "data",
    "message",
    "sweep_at",
    "next_run_at",
    "heartbeat_at",
    "waiting_for",
    "wait_deadline",
    "instructions",
    "end_state",
    "error_message",
    "error_detail",
    "finished_at",
)


def _save(op: Operation, saga: Saga, *, reason: str = "", expected_version: int | None = None) -> bool:
    """Write the row and the subject's status in the caller's transaction.

    With `expected_version`, the write is a compare-and-set: it happens only if nobody changed the row
    since that version was read (returns False otherwise, and writes nothing). Without it, the caller
    holds the row lock."""
    op.message = _describe(op, saga, reason)[:500]
    op.updated_at = timezone.now()
    fields = _update_fields()
    params = [field.get_db_prep_save(getattr(op, field.attname), connection) for field in fields]
    params += [op.version + 1, Operation._meta.pk.get_db_prep_value(op.pk, connection)]
    compare = expected_version is not None
    if compare:
        params.append(expected_version)
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(connection.vendor, compare), params)
        if cursor.rowcount != 1:
            return False
    op.version += 1
    saga.write_status(op, status_view(op, saga))
    return True


# The two writes every step makes (its row, its StepRun) as SQL compiled once: on this path the ORM's
# query building cost more than the database did.


@functools.cache
def _update_fields() -> list:
    return [Operation._meta.get_field(name) for name in (*_ROW_FIELDS, "updated_at")]


@functools.cache
def _update_sql(vendor: str, compare: bool) -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(f"{qn(field.column)} = %s" for field in _update_fields())
    where = f"{qn('id')} = %s" + (f" AND {qn('version')} = %s" if compare else "")
    # Names come from the model's metadata, values go as parameters.
    return f"UPDATE {qn(Operation._meta.db_table)} SET {columns}, {qn('version')} = %s WHERE {where}"  # noqa: S608


@functools.cache
def _insert_fields() -> list:
    return [field for field in StepRun._meta.concrete_fields if not field.primary_key]


@functools.cache
def _insert_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    fields = _insert_fields()
    columns = ", ".join(qn(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {qn(StepRun._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608


def _insert_run(run: StepRun) -> None:
    params = [field.get_db_prep_save(getattr(run, field.attname), connection) for field in _insert_fields()]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection.vendor), params)


# --- Enqueueing ----------------------------------------------------------------------------------


def canvas(op: Operation, saga: Saga) -> Signature | None:
    """The rest of the saga from the persisted position, as a Celery chain: consecutive single steps on
    the same queue travel as one segment task (it claims and records each step on its own, so a crash
    loses nothing, but pays the broker once), and each parallel group is a chord."""
    from provisioning import tasks

    op_id = str(op.pk)
    parts: list[Signature] = []
    segment: list[int] = []
    segment_queue = ""

    def close_segment() -> None:
        if segment:
            parts.append(
                tasks.run_steps.si(op_id, op.kind, list(segment)).set(queue=segment_queue, ignore_result=True)
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
            tasks.run_step.si(op_id, position, step.name).set(queue=step.queue_for(op.queue))
            for step in group
        ]
        parts.append(chord(header, tasks.join_group.si(op_id, position).set(queue=op.queue)))
    close_segment()
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else chain(*parts)


def enqueue(op: Operation, saga: Saga, countdown: float | None = None) -> None:
    """Send the rest of the saga once the current transaction commits (outbox: no message for a row
    that was never stored; the sweeper re-sends one that was lost)."""
    from provisioning import tasks

    if op.state == OperationState.COMPENSATING:
        sig = tasks.compensate.si(str(op.pk)).set(queue=op.queue, ignore_result=True)
    else:
        sig = canvas(op, saga)
    if sig is None:
        return
    options = {"countdown": countdown} if countdown else {}
    # Robust: the row is stored and its sweep time set, so a broker that is down must not turn the
    # caller's committed work into an error (an API answering 500 for a booking it kept); the error is
    # logged and the sweeper sends the message once the broker is back.
    transaction.on_commit(lambda: sig.apply_async(**options), robust=True)


def _redrive_at(now: datetime, delay: float = 0.0) -> datetime:
    return now + timedelta(seconds=delay + settings.SAGA_REDRIVE_AFTER)


def _heartbeat_timeout(step: Step) -> float:
    return step.heartbeat_timeout or settings.SAGA_HEARTBEAT_TIMEOUT


def _bounded(op: Operation, when: datetime | None) -> datetime | None:
    """The sweeper must also look at the row when the operation's own deadline passes."""
    if op.deadline and not op.end_state and (when is None or op.deadline < when):
        return op.deadline
    return when


# --- Starting ------------------------------------------------------------------------------------


def start(
    *,
    kind: str,
    subject=None,
    customer=None,
    data: dict | None = None,
    queue: str = "default",
    timeout: timedelta | None = None,
    send: bool = True,
) -> Operation:
    """Store a new operation and send it to the workers once the caller's transaction commits. With
    `send=False` the caller runs its first steps itself (`run_here`), after the commit; if it never
    does, the sweeper sends the operation once its row is due."""
    saga = saga_for(kind)
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
        deadline=now + timeout if timeout else None,
    )
    op.sweep_at = _bounded(op, _redrive_at(now))
    op.message = _describe(op, saga)
    op.save(force_insert=True)
    saga.write_status(op, status_view(op, saga))
    if send:
        enqueue(op, saga)
    return op


# --- Running steps -------------------------------------------------------------------------------


def _start_attempt(op: Operation, step: Step, now: datetime) -> int:
    """Mark `step` as running on this worker (in memory; the caller saves)."""
    st = step_state(op, step.name)
    st["status"] = StepStatus.RUNNING
    st["attempts"] = st.get("attempts", 0) + 1
    st["started_at"] = _ts(now)
    st["worker"] = WORKER
    op.run()
    op.heartbeat_at = now
    op.sweep_at = _bounded(op, now + timedelta(seconds=_heartbeat_timeout(step)))
    return st["attempts"]


def _claimable(op: Operation | None, position: int, name: str, now: datetime) -> tuple[bool, bool]:
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
        st["status"] == StepStatus.RETRYING and st.get("next_run_at", 0) <= _ts(now) + EARLY_TOLERANCE
    )
    return due, False  # not due: running elsewhere, waiting, or later


def _load(op_id: str) -> Operation | None:
    try:
        return Operation.objects.get(pk=op_id)
    except Operation.DoesNotExist:
        return None


def _claim(op_id: str, position: int, name: str) -> tuple[bool, StepContext | None]:
    """Take the step for this worker with a compare-and-set on the row's version, or say why not:
    (whether the chain may go on, the context to run it with)."""
    for _ in range(20):
        now = timezone.now()
        op = _load(op_id)
        due, go_on = _claimable(op, position, name, now)
        if not due:
            return go_on, None
        saga = saga_for(op.kind)
        step = saga.step(name)
        version = op.version
        attempt = _start_attempt(op, step, now)
        with transaction.atomic():
            if _save(op, saga, expected_version=version):
                return True, StepContext(op, saga, step, attempt)
        # Somebody changed the row meanwhile (a sibling, a signal, the sweeper): look again.
    return False, None


def execute_segment(op_id: str, kind: str, positions: list[int]) -> bool:
    """Run consecutive single steps one after the other. Recording a step and claiming the next one
    are one transaction, so a step costs one write commit on this path. Returns whether the Celery
    chain goes on (every step finished)."""
    groups = saga_for(kind).groups()
    index = 0
    go_on, ctx = _claim(op_id, positions[0], groups[positions[0]][0].name)
    while True:
        if ctx is None:
            if not go_on:
                return False
            index += 1  # already done by an earlier delivery: look at the next one
            if index == len(positions):
                return True
            go_on, ctx = _claim(op_id, positions[index], groups[positions[index]][0].name)
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
        ctx = StepContext(op, saga, group[0], _start_attempt(op, group[0], timezone.now()))
        with log_context(operation=op.pk, kind=op.kind, step=ctx.step.name, attempt=ctx.attempt):
            result = _outcome_of(ctx)
        now = timezone.now()
        runs.append(_apply_outcome(op, ctx, result, now))
        consumed += ctx.consumed_signals
        plan = settle(op, saga, now, runs[-1].message if runs[-1].outcome != Outcome.DONE else "")
    with transaction.atomic():
        if runs and _save(op, saga, reason=plan.reason, expected_version=version):
            for run in runs:
                _insert_run(run)
            if consumed:
                Signal.objects.filter(pk__in=consumed).update(consumed_at=timezone.now())
            if plan.go_on or plan.send:
                enqueue(op, saga, countdown=plan.countdown)
        else:
            # Nothing ran here, or the row moved on without us: the workers take it from the row (a
            # message too many is harmless, the claims run each step once).
            op = _load(str(op.pk))
            if op is not None and op.state == OperationState.PENDING and not op.end_state:
                enqueue(op, saga)
            return
    for run in runs:
        log.info("operation %s: step %s attempt %s -> %s", op.pk, run.step, run.attempt, run.outcome)


def execute_step(op_id: str, position: int, name: str) -> bool:
    """Run one step of one operation, once (a chord member). Returns whether the chain should go on."""
    go_on, ctx = _claim(op_id, position, name)
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
    return _record(ctx, _outcome_of(ctx), claim_next)


_OUTCOMES = Done | RetryAfter | LookAgain | WaitForSignal


def _outcome_of(ctx: StepContext) -> Done | RetryAfter | LookAgain | WaitForSignal | Exception:
    """Run the step: its outcome, or the exception it raised. A look past the step's poll deadline
    becomes what `on_poll_timeout` says (by default the saga times out)."""
    try:
        if step_state(ctx.operation, ctx.step.name).get("wait_timed_out"):
            result = ctx.step.on_wait_timeout(ctx)
        else:
            result = ctx.step.run(ctx)
        if isinstance(result, LookAgain):
            deadline = ctx.step.poll_deadline(ctx)
            if deadline is not None and time.time() >= deadline:
                result = ctx.step.on_poll_timeout(ctx, result.reason)
        if not isinstance(result, _OUTCOMES):
            raise TypeError(
                f"step {ctx.step.name} returned {result!r}, not Done, RetryAfter, LookAgain or WaitForSignal"
            )
    except Exception as exc:  # recorded on the row: a failing step must never end the saga silently
        result = exc
    return result


def _record(ctx: StepContext, result, claim_next: Step | None) -> tuple[bool, StepContext | None]:
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
                    # The sweeper took this attempt for lost and gave the step to another worker.
                    log.warning(
                        "operation %s: step %s attempt %s was superseded", op.pk, ctx.step.name, ctx.attempt
                    )
                    return False, None
            run = _apply_outcome(op, ctx, result, now)
            plan = settle(op, ctx.saga, now, run.message if run.outcome != Outcome.DONE else "")
            next_ctx = None
            if plan.go_on and claim_next is not None:
                attempt = _start_attempt(op, claim_next, now)
                next_ctx = StepContext(op, ctx.saga, claim_next, attempt)
            if _save(op, ctx.saga, reason=plan.reason, expected_version=expected):
                _insert_run(run)
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


def _apply_outcome(op: Operation, ctx: StepContext, result, now: datetime) -> StepRun:
    """Change the step's state in memory by its outcome; return the attempt's StepRun (not saved)."""
    step = ctx.step
    st = step_state(op, step.name)
    run = StepRun(
        operation_id=op.pk,
        step=step.name,
        position=op.position,
        attempt=ctx.attempt,
        started_at=_dt(st.get("started_at") or _ts(now)),
        finished_at=now,
        worker=WORKER,
    )
    started_at = st.get("started_at") or _ts(now)
    for key in ("wait_timed_out", "started_at", "worker"):
        st.pop(key, None)
    if isinstance(result, Done):
        st["status"] = StepStatus.DONE
        op.data.update(result.data)
        run.outcome = Outcome.DONE
    elif isinstance(result, RetryAfter):
        delay = max(0.0, float(result.seconds))
        st["status"] = StepStatus.RETRYING
        st["next_run_at"] = _ts(now) + delay
        run.outcome, run.message, run.retry_delay = Outcome.RETRY, result.reason, delay
    elif isinstance(result, LookAgain):
        # The polling clock lives in the row: how many looks, since when, so that a crash or a
        # redelivery keeps the rhythm and the step's time limit.
        since = float(st.setdefault("polling_since", started_at))
        st["looks"] = looks = st.get("looks", 0) + 1
        if result.seconds is not None:
            delay = max(0.0, float(result.seconds))
        else:
            delay = step.poll_policy(ctx).delay(looks, _ts(now) - since)
        deadline = step.poll_deadline(ctx)
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - _ts(now)))  # the last look is at the deadline
        st["status"] = StepStatus.RETRYING
        st["next_run_at"] = _ts(now) + delay
        run.outcome, run.message, run.retry_delay = Outcome.LOOK, result.reason, delay
    elif isinstance(result, WaitForSignal):
        deadline = result.deadline if isinstance(result.deadline, datetime) else now + result.deadline
        run.outcome, run.message = Outcome.WAIT, result.message or f"waiting for {result.signal}"
        early = Signal.objects.filter(operation_id=op.pk, name=result.signal, consumed_at__isnull=True)
        if early.exclude(pk__in=ctx.consumed_signals).exists():
            st["status"] = StepStatus.PENDING  # it arrived while the step ran: go again at once
        else:
            st["status"] = StepStatus.WAITING
            st["wait_deadline"] = _ts(deadline)
        op.waiting_for = result.signal
        op.wait_deadline = deadline
        op.instructions = result.instructions
    elif isinstance(result, StepFailed):
        st["status"] = StepStatus.FAILED
        run.outcome, run.message, run.detail = Outcome.FAILED, result.message, result.detail
        op.end_state = result.end_state
        op.error_message = result.message
        op.error_detail = result.detail
    else:
        text = f"{type(result).__name__}: {result}"
        run.message, run.detail = text, "".join(traceback.format_exception(result))
        # Looks are not failures: only the attempts that were not looks count against the policy.
        if ctx.attempt - st.get("looks", 0) >= step.retry.max_attempts:
            st["status"] = StepStatus.FAILED
            run.outcome = Outcome.FAILED
            op.end_state = OperationState.FAILED
            op.error_message = (
                f"{step.title or step.name} failed after {ctx.attempt} attempts: {text}. "
                "The finished steps were undone; correct the cause and submit again."
            )
            op.error_detail = run.detail
        else:
            delay = step.retry.delay(ctx.attempt)
            st["status"] = StepStatus.RETRYING
            st["next_run_at"] = _ts(now) + delay
            run.outcome, run.retry_delay = Outcome.RETRY, delay
            run.message = f"attempt {ctx.attempt} failed: {text}"
    return run


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
        op.sweep_at = _redrive_at(now)
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
        op.sweep_at = _bounded(op, _redrive_at(now))
        return Plan(go_on=True)

    if running:
        op.run()
        return Plan(reason=reason)
    if StepStatus.PENDING in statuses:
        op.queue_next()
        op.sweep_at = _bounded(op, _redrive_at(now))
        return Plan(send=True, reason=reason)
    if StepStatus.RETRYING in statuses:
        due = min(
            step_state(op, s.name).get("next_run_at", 0)
            for s in group
            if step_state(op, s.name)["status"] == StepStatus.RETRYING
        )
        delay = max(0.0, due - _ts(now))
        op.retry_later()
        op.next_run_at = _dt(due)
        if delay <= settings.SAGA_COUNTDOWN_MAX:
            op.sweep_at = _bounded(op, _redrive_at(now, delay))
            return Plan(send=True, countdown=delay or None, reason=reason)
        op.sweep_at = _bounded(op, _dt(due))  # a long wait lives in the database, not in a countdown
        return Plan(reason=reason)
    # Every unfinished step of the group waits for a signal.
    deadlines = [step_state(op, s.name).get("wait_deadline") for s in group]
    op.wait()
    op.sweep_at = _bounded(op, _dt(min(d for d in deadlines if d)))
    return Plan(reason=reason)


def commit_plan(op: Operation, saga: Saga, now: datetime, reason: str = "") -> None:
    """Settle, save and carry out, for callers that hold the row lock (services, the sweeper)."""
    plan = settle(op, saga, now, reason)
    _save(op, saga, reason=plan.reason)
    if plan.send:
        enqueue(op, saga, countdown=plan.countdown)


def join_group(op_id: str, position: int) -> bool:
    """The chord's body: the chain goes on only if the whole group finished."""
    op = Operation.objects.filter(pk=op_id).only("position", "state").first()
    return op is not None and op.position > position and not op.is_terminal


def heartbeat(op_id, step: Step) -> None:
    now = timezone.now()
    Operation.objects.filter(pk=op_id, state=OperationState.RUNNING).update(
        heartbeat_at=now, sweep_at=now + timedelta(seconds=_heartbeat_timeout(step))
    )


# --- Compensation --------------------------------------------------------------------------------


def compensate_next(op_id: str) -> int | None:
    """Undo the last finished step not yet undone. Returns 0 to go on at once, None when there is
    nothing more to do now (finished, claimed elsewhere, or a retry was scheduled)."""
    now = timezone.now()
    with transaction.atomic():
        op = Operation.objects.select_for_update().filter(pk=op_id).first()
        if op is None or op.state != OperationState.COMPENSATING:
            return None
        saga = saga_for(op.kind)
        todo = [n for n in reversed(saga.order()) if step_state(op, n)["status"] == StepStatus.DONE]
        if not todo:
            op.end()
            op.finished_at = now
            op.sweep_at = None
            _save(op, saga)
            return None
        name = todo[0]
        st = step_state(op, name)
        if st.get("compensation_claim", 0) > _ts(now):
            return None  # another worker is undoing this step right now
        step = saga.step(name)
        st["compensations"] = attempt = st.get("compensations", 0) + 1
        st["compensation_claim"] = _ts(now) + _heartbeat_timeout(step)
        op.sweep_at = now + timedelta(seconds=_heartbeat_timeout(step))
        _save(op, saga)
    started = now
    ctx = StepContext(op, saga, step, attempt)
    error = None
    try:
        with log_context(operation=op.pk, kind=op.kind, step=name, attempt=f"undo {attempt}"):
            step.compensate(ctx)
    except Exception as exc:  # recorded; compensation retries, then tells a hostmaster what is left
        error = exc
    now = timezone.now()
    with transaction.atomic():
        op = Operation.objects.select_for_update().get(pk=op_id)
        st = step_state(op, name)
        st.pop("compensation_claim", None)
        run = StepRun(
            operation=op,
            step=name,
            kind=StepRun.Kind.COMPENSATE,
            position=saga.order().index(name),
            attempt=attempt,
            started_at=started,
            finished_at=now,
            worker=WORKER,
        )
        delay = 0.0
        if error is None:
            st["status"] = StepStatus.COMPENSATED
            run.outcome = Outcome.COMPENSATED
        else:
            run.message = f"{type(error).__name__}: {error}"
            run.detail = "".join(traceback.format_exception(error))
            if attempt < step.retry.max_attempts:
                delay = step.retry.delay(attempt)
                run.outcome, run.retry_delay = Outcome.RETRY, delay
            else:
                st["status"] = StepStatus.FAILED
                run.outcome = Outcome.COMPENSATION_FAILED
                op.end_state = OperationState.FAILED
                op.error_message = (
                    f"{op.error_message} Undoing '{step.title or step.name}' failed too ({run.message}): "
                    "a hostmaster must remove what it created by hand (see the operation's timeline)."
                ).strip()
        op.sweep_at = _redrive_at(now, delay)
        run.save(force_insert=True)
        _save(op, saga)
        if delay and delay <= settings.SAGA_COUNTDOWN_MAX:
            enqueue(op, saga, countdown=delay)
    return 0 if not delay else None


# --- Sweeping ------------------------------------------------------------------------------------


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
        saga = saga_for(op.kind)
        if op.state == OperationState.COMPENSATING:
            op.sweep_at = _redrive_at(now)
            _save(op, saga)
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
            timeout = max((_heartbeat_timeout(s) for s in running), default=0.0)
            if op.heartbeat_at is None or op.heartbeat_at + timedelta(seconds=timeout) <= now:
                _mark_lost(op, group, now)
            else:
                op.sweep_at = op.heartbeat_at + timedelta(seconds=timeout)
        elif op.state == OperationState.WAITING:
            for step in group:
                st = step_state(op, step.name)
                if st["status"] == StepStatus.WAITING and st.get("wait_deadline", 0) <= _ts(now):
                    st["status"] = StepStatus.PENDING
                    st["wait_timed_out"] = True
        elif not op.end_state:
            # Pending or retrying and due: the message was lost (broker wiped, worker killed) or the
            # retry waited in the database. Send the rest of the saga again; claims make it act once.
            log.info("operation %s: sending it again (%s)", op.pk, op.state)
            op.sweep_at = _bounded(op, _redrive_at(now))
            _save(op, saga)
            enqueue(op, saga)
            return
        commit_plan(op, saga, now)


def _mark_lost(op: Operation, group: list[Step], now: datetime) -> None:
    for step in group:
        st = step_state(op, step.name)
        if st["status"] != StepStatus.RUNNING:
            continue
        StepRun.objects.create(
            operation=op,
            step=step.name,
            position=op.position,
            attempt=st["attempts"],
            started_at=_dt(st.get("started_at") or _ts(now)),
            finished_at=now,
            outcome=Outcome.LOST,
            message="The worker stopped answering (killed or hung).",
            worker=st.get("worker", ""),
        )
        st.pop("started_at", None)
        if st["attempts"] >= step.retry.max_attempts:
            st["status"] = StepStatus.FAILED
            op.end_state = OperationState.FAILED
            op.error_message = (
                f"{step.title or step.name}: the worker running it died {st['attempts']} times. "
                "The finished steps were undone; a hostmaster should look at the workers."
            )
        else:
            st["status"] = StepStatus.RETRYING
            st["next_run_at"] = _ts(now)


def wait_for(op_id, timeout: float = 30.0, poll: float = 0.05) -> Operation:
    """Poll until the operation is final (for commands and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        op = Operation.objects.get(pk=op_id)
        if op.is_terminal or time.monotonic() > deadline:
            return op
        time.sleep(poll)
