"""Business actions of the provisioning core: customers and users, and operations (signal, cancel,
retry). API views, admin actions, wizard views and commands call these; none holds logic of its own."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from provisioning.choices import IdempotencyState, OperationState, Role, StepStatus
from provisioning.models import Customer, IdempotencyKey, Membership, Operation, Signal
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


# --- Idempotency keys (the IETF httpapi draft "The Idempotency-Key HTTP Header Field") -----------

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"[\x21\x23-\x7e]{1,255}")  # visible ASCII but the double quote


class IdempotencyKeyBusy(ServiceError):
    code = 409


class IdempotencyKeyReused(ServiceError):
    code = 422


@dataclass(frozen=True)
class IdempotencyClaim:
    """A request's hold on its key: `replay` is the first answer when the request repeats one that was
    answered; else the request runs and hands its answer over with `idempotency_key_answer`."""

    pk: int
    since: datetime  # the holder's mark: only the request that holds the key may answer for it
    replay: IdempotencyKey | None = None


def idempotency_key_parse(raw: str) -> str:
    """The key of a header value: an sf-string (`"8e03978e-..."`, as the draft writes it) or a bare
    token; 1 to 255 visible ASCII characters."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.fullmatch(value):
        raise ValidationError(
            {IDEMPOTENCY_HEADER: ["must be 1 to 255 visible ASCII characters (a UUID is best)."]}
        )
    return value


def idempotency_scope(user) -> str:
    """Keys are per customer; a user who acts for several customers (or none) has keys of their own,
    so that no answer is ever replayed to somebody who could not have seen it."""
    from provisioning.selectors import customer_ids_of

    ids = customer_ids_of(user)
    return f"customer:{ids[0]}" if len(ids) == 1 else f"user:{user.pk}"


def idempotency_fingerprint(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _idempotency_ttl() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "IDEMPOTENCY_KEY_TTL", 86400)))


def idempotency_key_claim(*, scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
    """Take the key for this request, or say why not: the first answer again (`replay`), 422 when the
    key came with another request, 409 while the first request with it is still being handled. The
    insert is the claim: of two requests at the same moment, the unique index lets one through."""
    for _ in range(3):
        now = timezone.now()
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(
                    scope=scope,
                    key=key,
                    fingerprint=fingerprint,
                    created_at=now,
                    expires_at=now + _idempotency_ttl(),
                )
            return IdempotencyClaim(pk=row.pk, since=now)
        except IntegrityError:
            pass
        row = IdempotencyKey.objects.filter(scope=scope, key=key).first()
        if row is None:
            continue  # the first request was refused meanwhile and freed the key
        if row.expires_at <= now:
            IdempotencyKey.objects.filter(pk=row.pk, expires_at__lte=now).delete()
            continue
        if row.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"The {IDEMPOTENCY_HEADER} '{key}' came with another request (method, path or body): "
                "use a new key for a new request."
            )
        if row.state == IdempotencyState.DONE:
            return IdempotencyClaim(pk=row.pk, since=row.created_at, replay=row)
        stale = now - timedelta(seconds=float(getattr(settings, "IDEMPOTENCY_PROCESSING_TIMEOUT", 120)))
        if row.created_at < stale:
            # The request that held it died without an answer (a killed process): this one takes over.
            took = IdempotencyKey.objects.filter(
                pk=row.pk, state=IdempotencyState.PROCESSING, created_at=row.created_at
            ).update(created_at=now, expires_at=now + _idempotency_ttl())
            if took:
                return IdempotencyClaim(pk=row.pk, since=now)
        raise IdempotencyKeyBusy(
            f"A request with the {IDEMPOTENCY_HEADER} '{key}' is still being handled: wait for its answer, "
            "then send it again to read that answer."
        )
    raise IdempotencyKeyBusy(f"The {IDEMPOTENCY_HEADER} '{key}' is contended: try again.")


def idempotency_key_answer(
    *, claim: IdempotencyClaim, status_code: int, content_type: str = "", body: str = "", location: str = ""
) -> None:
    """Keep a successful answer for the key's repeats; any other answer created nothing, so the key is
    freed and the client may send the request again with it."""
    held = IdempotencyKey.objects.filter(
        pk=claim.pk, state=IdempotencyState.PROCESSING, created_at=claim.since
    )
    if 200 <= status_code < 400:
        held.update(
            state=IdempotencyState.DONE,
            status_code=status_code,
            content_type=content_type[:100],
            body=body,
            location=location[:500],
        )
    else:
        held.delete()


def idempotency_key_release(*, claim: IdempotencyClaim) -> None:
    """The request failed without an answer: free its key."""
    IdempotencyKey.objects.filter(
        pk=claim.pk, state=IdempotencyState.PROCESSING, created_at=claim.since
    ).delete()


def idempotency_keys_purge(*, batch: int = 10000) -> int:
    """Forget keys past IDEMPOTENCY_KEY_TTL (beat); a batch at a time, on the expiry index."""
    ids = list(
        IdempotencyKey.objects.filter(expires_at__lte=timezone.now()).values_list("pk", flat=True)[:batch]
    )
    return IdempotencyKey.objects.filter(pk__in=ids).delete()[0] if ids else 0
