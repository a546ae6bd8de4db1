import time

from celery import signature
from django.db import transaction

from provisioning.models import Operation
from provisioning.saga import runner
from provisioning.saga.definition import saga_for


def start(kind: str, plan: dict | None = None, **kwargs) -> Operation:
    with transaction.atomic():
        return runner.start(kind=kind, data={"plan": plan or {}}, **kwargs)


def wait_final(op_id, timeout: float = 30.0, sweep: bool = True) -> Operation:
    """Wait for the operation to end, running the real sweeper every half second as beat would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = Operation.objects.get(pk=op_id)
        if op.is_terminal:
            return op
        if sweep:
            runner.sweep()
        time.sleep(0.25)
    op = Operation.objects.get(pk=op_id)
    raise AssertionError(f"operation {op_id} still {op.state} after {timeout}s: {op.message} {op.steps}")


def wait_state(op_id, state: str, timeout: float = 20.0) -> Operation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = Operation.objects.get(pk=op_id)
        if op.state == state:
            return op
        time.sleep(0.1)
    raise AssertionError(f"operation {op_id} never reached {state}: {Operation.objects.get(pk=op_id).state}")


def send_again(op: Operation) -> int:
    """Deliver what the saga is at once more: the rest of it (what the sweeper sends after a lost
    message), and each step of its current group as a message of its own."""
    saga = saga_for(op.kind)
    with transaction.atomic():
        runner.enqueue(op, saga)
    group = saga.groups()[min(op.position, len(saga.groups()) - 1)]
    for step in group:
        signature("provisioning.run_step", args=(str(op.pk), op.position, step.name)).set(
            queue=step.queue_for(op.queue), ignore_result=True
        ).apply_async()
    return 1 + len(group)
