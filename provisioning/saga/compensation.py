"""Compensation: undo the finished steps in reverse order, one at a time, each claimed for a while so
that two deliveries never undo the same step at once; retried, then left to a hostmaster with a message."""

from __future__ import annotations

import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.choices import OperationState, Outcome, StepStatus
from provisioning.logs import log_context
from provisioning.models import Operation, StepRun
from provisioning.saga.context import StepContext
from provisioning.saga.enqueue import enqueue, heartbeat_timeout, redrive_at
from provisioning.saga.store import WORKER, save_row, step_state, ts
from provisioning.saga.versions import resolve


def compensate_next(op_id: str) -> int | None:
    """Undo the last finished step not yet undone. Returns 0 to go on at once, None when there is
    nothing more to do now (finished, claimed elsewhere, or a retry was scheduled)."""
    now = timezone.now()
    with transaction.atomic():
        op = Operation.objects.select_for_update().filter(pk=op_id).first()
        if op is None or op.state != OperationState.COMPENSATING:
            return None
        saga = resolve(op, now)  # an undo runs only with the code of the step it undoes
        if saga is None:
            return None
        todo = [n for n in reversed(saga.order()) if step_state(op, n)["status"] == StepStatus.DONE]
        if not todo:
            op.end()
            op.finished_at = now
            op.sweep_at = None
            save_row(op, saga)
            return None
        name = todo[0]
        st = step_state(op, name)
        if st.get("compensation_claim", 0) > ts(now):
            return None  # another worker is undoing this step right now
        step = saga.step(name)
        st["compensations"] = attempt = st.get("compensations", 0) + 1
        st["compensation_claim"] = ts(now) + heartbeat_timeout(step)
        op.sweep_at = now + timedelta(seconds=heartbeat_timeout(step))
        save_row(op, saga)
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
        op.sweep_at = redrive_at(now, delay)
        run.save(force_insert=True)
        save_row(op, saga)
        if delay and delay <= settings.SAGA_COUNTDOWN_MAX:
            enqueue(op, saga, countdown=delay)
    return 0 if not delay else None
