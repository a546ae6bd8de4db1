"""Business actions of the provisioning core: customers and users, and operations (signal, cancel,
retry). API views, admin actions, wizard views and commands call these; none holds logic of its own."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from provisioning.choices import OperationState, Role, StepStatus
from provisioning.models import Customer, Membership, Operation, Signal
from provisioning.saga import runner
from provisioning.saga.versions import saga_view

HOSTMASTERS = "hostmasters"


class ServiceError(Exception):
    """A request that cannot be carried out as asked; `code` maps to an HTTP status."""

    code = 400

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Conflict(ServiceError):
    code = 409


def is_hostmaster(user) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    cached = getattr(user, "_is_hostmaster", None)
    if cached is None:
        cached = user.is_superuser or user.groups.filter(name=HOSTMASTERS).exists()
        user._is_hostmaster = cached
    return cached


# --- Customers and users -------------------------------------------------------------------------


@transaction.atomic
def api_user_create_or_update(
    *,
    username: str,
    customer_name: str,
    hostmaster: bool = False,
    password: str | None = None,
    role: str = Role.OWNER,
) -> tuple[AbstractUser, str]:
    """Create or update a user of `customer_name` (created if new) and return it with its API token."""
    User = get_user_model()
    customer, _ = Customer.objects.get_or_create(name=customer_name)
    user, _ = User.objects.get_or_create(username=username)
    if password:
        user.set_password(password)
    elif not user.has_usable_password():
        user.set_unusable_password()
    if hostmaster:
        user.is_staff = True
    user.save()
    if hostmaster:
        group, _ = Group.objects.get_or_create(name=HOSTMASTERS)
        _grant_hostmaster_permissions(group)
        user.groups.add(group)
    Membership.objects.update_or_create(user=user, customer=customer, defaults={"role": role})
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def _grant_hostmaster_permissions(group: Group) -> None:
    from django.contrib.auth.models import Permission

    apps = ["provisioning", "bookings", "images", "applications", "orders"]
    group.permissions.set(Permission.objects.filter(content_type__app_label__in=apps))


# --- Operations ----------------------------------------------------------------------------------


def _locked(operation: Operation) -> Operation:
    return Operation.objects.select_for_update().get(pk=operation.pk)


@transaction.atomic
def operation_signal(*, operation: Operation, name: str, payload: dict | None = None, user=None) -> Signal:
    """Store a signal and wake the saga if one of its steps waits for it. A signal sent before the
    step waits is kept and consumed when the step asks for it."""
    if name == "cancel":
        operation_cancel(operation=operation, user=user, reason=(payload or {}).get("reason", ""))
        return Signal.objects.create(
            operation=operation, name=name, payload=payload or {}, sent_by=user, consumed_at=timezone.now()
        )
    op = _locked(operation)
    if op.is_terminal:
        raise Conflict(
            f"The operation has already ended ({op.get_state_display().lower()}); it takes no signals."
        )
    signal = Signal.objects.create(operation=op, name=name, payload=payload or {}, sent_by=user)
    saga = saga_view(op)
    if op.state == OperationState.WAITING and not op.end_state:
        woke = False
        for step in saga.groups()[op.position]:
            st = runner.step_state(op, step.name)
            if st["status"] == StepStatus.WAITING and op.waiting_for == name:
                st["status"] = StepStatus.PENDING
                woke = True
        if woke:
            runner.commit_plan(op, saga, timezone.now())
    return signal


@transaction.atomic
def operation_cancel(*, operation: Operation, user=None, reason: str = "") -> Operation:
    """Cancel: the saga stops starting steps, undoes what it finished and ends cancelled."""
    op = _locked(operation)
    if not op.can_cancel:
        raise Conflict(f"The operation cannot be cancelled: it is {op.get_state_display().lower()}.")
    who = getattr(user, "username", "") or "the system"
    op.end_state = OperationState.CANCELLED
    op.error_message = f"Cancelled by {who}" + (f": {reason}" if reason else ".")
    runner.commit_plan(op, saga_view(op), timezone.now())
    return op


@transaction.atomic
def operation_retry(*, operation: Operation, user=None) -> Operation:
    """Run the waiting or retrying step now instead of at its scheduled time."""
    op = _locked(operation)
    if not op.can_retry or op.end_state:
        raise Conflict(f"Only a pending, retrying or waiting operation can be retried now; it is {op.state}.")
    now = timezone.now()
    saga = saga_view(op)
    for step in saga.groups()[op.position]:
        st = runner.step_state(op, step.name)
        if st["status"] in (StepStatus.RETRYING, StepStatus.WAITING):
            st["status"] = StepStatus.PENDING
    op.sweep_at = now + timedelta(seconds=1)
    runner.commit_plan(op, saga, now)
    return op
