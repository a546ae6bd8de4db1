"""Reads of the provisioning core: what a user may see."""

from datetime import UTC, datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from provisioning.choices import OperationState, StepStatus
from provisioning.models import Customer, Operation, StepRun
from provisioning.saga.versions import saga_view
from provisioning.services import is_hostmaster


def customer_ids_of(user) -> list[int]:
    if not getattr(user, "is_authenticated", False):
        return []
    cached = getattr(user, "_customer_ids", None)
    if cached is None:
        cached = list(user.memberships.values_list("customer_id", flat=True))
        user._customer_ids = cached
    return cached


def customers_of(user) -> QuerySet[Customer]:
    return Customer.objects.filter(pk__in=customer_ids_of(user))


def operations_visible_to(user) -> QuerySet[Operation]:
    """Hostmasters see every operation; a customer's users see the operations serving its subjects."""
    qs = Operation.objects.select_related("customer")
    if is_hostmaster(user):
        return qs
    return qs.filter(customer_id__in=customer_ids_of(user))


def operation_timeline(operation: Operation) -> list[StepRun]:
    """Every attempt so far, the ones still running included (those are not stored as StepRun rows
    until they end: they live in the operation's step states). Uses prefetched step_runs if any."""
    runs = list(operation.step_runs.all())
    for name, st in operation.steps.items():
        if st.get("status") == StepStatus.RUNNING and st.get("started_at"):
            runs.append(
                StepRun(
                    operation=operation,
                    step=name,
                    position=operation.position,
                    attempt=st.get("attempts", 1),
                    started_at=datetime.fromtimestamp(st["started_at"], tz=UTC),
                    worker=st.get("worker", ""),
                )
            )
    return sorted(runs, key=lambda r: r.started_at)


def operation_steps(operation: Operation) -> list[dict]:
    """Each step of the operation's saga in run order: title, status, attempts and its attempts' runs
    (uses prefetched step_runs if any)."""
    runs: dict[str, list[StepRun]] = {}
    for run in operation_timeline(operation):
        runs.setdefault(run.step, []).append(run)
    result = []
    for position, group in enumerate(saga_view(operation).groups()):
        for step in group:
            st = operation.steps.get(step.name, {})
            result.append(
                {
                    "name": step.name,
                    "title": step.title or step.name,
                    "position": position + 1,
                    "status": st.get("status", StepStatus.PENDING.value),
                    "attempts": st.get("attempts", 0),
                    "runs": runs.get(step.name, []),
                }
            )
    return result


def failed_operations(days: int = 7) -> QuerySet[Operation]:
    """Operations that ended failed or timed out lately, newest first: a hostmaster should look."""
    since = timezone.now() - timedelta(days=days)
    return (
        Operation.objects.select_related("customer")
        .filter(state__in=[OperationState.FAILED, OperationState.TIMED_OUT], finished_at__gte=since)
        .order_by("-finished_at")
    )
