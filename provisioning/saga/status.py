"""What an operation shows people: "step k of n: title", and the one-line message of its state."""

from __future__ import annotations

from provisioning.choices import TERMINAL_STATES, OperationState
from provisioning.models import Operation
from provisioning.saga.definition import Saga, StatusView
from provisioning.saga.steps import Step


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


def describe(op: Operation, saga: Saga, reason: str = "") -> str:
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
