"""A step's outcome: running it (its result, or the exception it raised) and what that result does to
the step's state in the row (in memory; the caller records it)."""

from __future__ import annotations

import time
import traceback
from datetime import datetime

from provisioning.choices import OperationState, Outcome, StepStatus
from provisioning.models import Operation, Signal, StepRun
from provisioning.saga.context import StepContext
from provisioning.saga.steps import Done, LookAgain, RetryAfter, StepFailed, WaitForSignal
from provisioning.saga.store import WORKER, dt, step_state, ts

_OUTCOMES = Done | RetryAfter | LookAgain | WaitForSignal


def outcome_of(ctx: StepContext) -> Done | RetryAfter | LookAgain | WaitForSignal | Exception:
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


def apply_outcome(op: Operation, ctx: StepContext, result, now: datetime) -> StepRun:
    """Change the step's state in memory by its outcome; return the attempt's StepRun (not saved)."""
    step = ctx.step
    st = step_state(op, step.name)
    run = StepRun(
        operation_id=op.pk,
        step=step.name,
        position=op.position,
        attempt=ctx.attempt,
        started_at=dt(st.get("started_at") or ts(now)),
        finished_at=now,
        worker=WORKER,
    )
    started_at = st.get("started_at") or ts(now)
    for key in ("wait_timed_out", "started_at", "worker"):
        st.pop(key, None)
    if isinstance(result, Done):
        st["status"] = StepStatus.DONE
        op.data.update(result.data)
        run.outcome = Outcome.DONE
    elif isinstance(result, RetryAfter):
        delay = max(0.0, float(result.seconds))
        st["status"] = StepStatus.RETRYING
        st["next_run_at"] = ts(now) + delay
        run.outcome, run.message, run.retry_delay = Outcome.RETRY, result.reason, delay
    elif isinstance(result, LookAgain):
        # The polling clock lives in the row: how many looks, since when, so that a crash or a
        # redelivery keeps the rhythm and the step's time limit.
        since = float(st.setdefault("polling_since", started_at))
        st["looks"] = looks = st.get("looks", 0) + 1
        if result.seconds is not None:
            delay = max(0.0, float(result.seconds))
        else:
            delay = step.poll_policy(ctx).delay(looks, ts(now) - since)
        deadline = step.poll_deadline(ctx)
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - ts(now)))  # the last look is at the deadline
        st["status"] = StepStatus.RETRYING
        st["next_run_at"] = ts(now) + delay
        run.outcome, run.message, run.retry_delay = Outcome.LOOK, result.reason, delay
    elif isinstance(result, WaitForSignal):
        deadline = result.deadline if isinstance(result.deadline, datetime) else now + result.deadline
        run.outcome, run.message = Outcome.WAIT, result.message or f"waiting for {result.signal}"
        early = Signal.objects.filter(operation_id=op.pk, name=result.signal, consumed_at__isnull=True)
        if early.exclude(pk__in=ctx.consumed_signals).exists():
            st["status"] = StepStatus.PENDING  # it arrived while the step ran: go again at once
        else:
            st["status"] = StepStatus.WAITING
            st["wait_deadline"] = ts(deadline)
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
            st["next_run_at"] = ts(now) + delay
            run.outcome, run.retry_delay = Outcome.RETRY, delay
            run.message = f"attempt {ctx.attempt} failed: {text}"
    return run
