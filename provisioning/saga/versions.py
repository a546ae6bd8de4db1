"""Definitions that change under running operations.

Every operation records the definition it started on (`Operation.definition`: the saga's version and
its step names in run order). The engine runs it on that definition only:
- the same version is registered (the current saga, or an older one kept with `current = False`):
  the operation finishes on the steps it started with;
- the current saga declares `upgrades[version]` (old step name → new name, None for a step that is
  gone): the operation moves to the current definition by that mapping, when no step of it runs;
- neither: the operation is *held* — waiting for `definition`, with a message for hostmasters and a
  look every SAGA_HELD_RECHECK seconds, so that a deploy that brings the definition back (or an
  upgrade) moves it on. It is never crashed, never run on the wrong step, never silently skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from provisioning.choices import OperationState, StepStatus
from provisioning.models import Operation
from provisioning.saga.definition import RecordedSaga, Saga, registered, saga_for
from provisioning.saga.settle import commit_plan
from provisioning.saga.store import save_row

HELD = "definition"  # what a held operation waits for


def recorded_version(op: Operation) -> str:
    return (op.definition or {}).get("version", "")


def saga_of(op: Operation) -> Saga | None:
    """The saga `op` runs on, or None when its definition is neither registered nor upgradable as it
    stands (the caller holds or upgrades it). Operations that recorded no definition (started before
    definitions were recorded) run on the current one."""
    version = recorded_version(op)
    if not version:
        return saga_for(op.kind)
    return registered(op.kind, version)


def saga_view(op: Operation) -> Saga:
    """The saga to show `op` by: its own definition, or one rebuilt from what the row recorded."""
    return saga_of(op) or RecordedSaga.of(op)


def upgrade_plan(op: Operation) -> tuple[Saga | None, str]:
    """(the current saga with `op.steps` and `op.position` rewritten by its declared mapping, or None;
    why not). Changes `op` in memory only when it answers a saga."""
    try:
        current = saga_for(op.kind)
    except LookupError:
        return None, f"no saga of kind {op.kind!r} exists in the running code"
    version = recorded_version(op)
    mapping = current.upgrades.get(version)
    if mapping is None:
        return None, f"the running code has version {current.version} and declares no upgrade from it"
    steps: dict[str, dict] = {}
    for name, st in op.steps.items():
        new = mapping.get(name, name)
        if new is None:
            if st.get("status") not in (StepStatus.PENDING, None):
                return None, f"the upgrade drops step {name!r}, which has already run"
            continue
        steps[new] = st
    names = {s.name for s in current.steps}
    if unknown := sorted(set(steps) - names):
        return None, f"the upgrade leaves steps the new definition does not have: {', '.join(unknown)}"
    if any(st.get("status") == StepStatus.RUNNING for st in steps.values()):
        return None, "a step of it is running"
    for name in names - set(steps):
        steps[name] = {"status": StepStatus.PENDING, "attempts": 0}
    groups = current.groups()
    position = next(
        (
            i
            for i, group in enumerate(groups)
            if any(steps[s.name]["status"] != StepStatus.DONE for s in group)
        ),
        len(groups) - 1,
    )
    later = [steps[s.name]["status"] for group in groups[position + 1 :] for s in group]
    if any(status != StepStatus.PENDING for status in later):
        return None, "steps that ran would come after steps that did not: the order changed too much"
    op.steps, op.position, op.definition = steps, position, current.definition()
    return current, ""


def hold(op: Operation, reason: str, now: datetime) -> None:
    """Hold `op` (row locked by the caller): it waits for a hostmaster, with a message that says why."""
    view = RecordedSaga.of(op)
    names = ", ".join(view.order())
    if op.state in (OperationState.PENDING, OperationState.RETRYING, OperationState.RUNNING):
        op.wait()
    elif op.waiting_for and op.waiting_for != HELD:
        # It waited for a person: what for is kept with its definition, and comes back on release.
        op.definition = {
            **(op.definition or {}),
            "waiting": {
                "for": op.waiting_for,
                "until": op.wait_deadline.isoformat() if op.wait_deadline else None,
                "instructions": op.instructions,
            },
        }
    op.waiting_for = HELD
    op.wait_deadline = None
    op.instructions = (
        f"Held for a hostmaster: this operation started on version {recorded_version(op)} of the saga "
        f"{op.kind} (steps: {names}), and {reason}. Deploy code that still has that version (keep the "
        "old definition with `current = False`), or declare an upgrade from it on the saga "
        "(`upgrades`); the operation then goes on by itself within "
        f"{settings.SAGA_HELD_RECHECK:g} s. Cancelling it undoes nothing until its definition is back."
    )
    op.sweep_at = now + timedelta(seconds=settings.SAGA_HELD_RECHECK)
    op.message = ""
    save_row(op, view, reason=op.instructions[:480])


def resolve(op: Operation, now: datetime) -> Saga | None:
    """With the row locked: the saga `op` runs on, upgrading it first if the current definition
    declares how; or None, having held it (once: a held operation is left as it is)."""
    saga = saga_of(op)
    if saga is not None:
        return saga
    saga, why = upgrade_plan(op)
    if saga is not None:
        return saga
    if not is_held(op):
        hold(op, why, now)
    return None


def release(op: Operation, saga: Saga, now: datetime) -> None:
    """A held operation whose definition is known again (or upgraded): on with it, from its row."""
    waiting = (op.definition or {}).get("waiting")
    op.definition = saga.definition()
    op.waiting_for, op.instructions = "", ""
    if waiting:  # it was waiting for a person when it was held: it waits for them again
        op.waiting_for, op.instructions = waiting["for"], waiting["instructions"]
        op.wait_deadline = datetime.fromisoformat(waiting["until"]) if waiting["until"] else None
        clocks = [when for when in (op.wait_deadline, op.deadline) if when is not None]
        op.sweep_at = min(clocks) if clocks else None
        save_row(op, saga)
        return
    if op.state == OperationState.WAITING:
        op.queue_next()
    commit_plan(op, saga, now)


def definition_moved(op_id) -> None:
    """A worker met an operation whose definition its code does not have: upgrade it by the saga's
    mapping and send it on, or hold it. Another definition's worker may still take it later."""
    now = timezone.now()
    with transaction.atomic():
        op = Operation.objects.select_for_update().filter(pk=op_id).first()
        if op is None or op.is_terminal or saga_of(op) is not None:
            return
        held = is_held(op)
        saga = resolve(op, now)
        if saga is None:
            return
        if held or op.state != OperationState.COMPENSATING:
            release(op, saga, now)
        else:
            commit_plan(op, saga, now)


def is_held(op: Operation) -> bool:
    return op.waiting_for == HELD and op.state in (OperationState.WAITING, OperationState.COMPENSATING)
