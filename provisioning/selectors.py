"""Reads of the provisioning core: what a user may see."""

from datetime import UTC, datetime

from django.db.models import QuerySet

from provisioning.choices import StepStatus
from provisioning.models import Customer, Operation, StepRun
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
