"""Business actions of the images app: build and launch, public keys, cloud accounts, and the status
hook of the build→launch saga. API views, admin actions, saga steps and other apps call these.

Another app launches for a subject of its own through `image_build_launch(status_listener=...)`: the
dotted path names a function `(reservation=, view=)` that the saga calls in the same transaction as
every status change (the bookings app writes it onto its event row). This app imports no other app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from images import conf
from images.choices import BuildStatus, ProviderName
from images.manifest import spread, validate_launch, validate_manifest
from images.models import CloudAccount, ImageBuild, PublicKey, Reservation, ReservationInstance
from images.sagas import clocks, saga_kind
from provisioning.choices import TERMINAL_STATES, OperationState, StepStatus
from provisioning.models import Customer, Operation
from provisioning.providers import ProviderError
from provisioning.providers.base import InstanceState, key_type, openssh_fingerprint, parse_public_key
from provisioning.providers.local import LocalProvider
from provisioning.saga import runner
from provisioning.saga.definition import Saga, StatusView
from provisioning.selectors import customer_ids_of
from provisioning.services import Conflict, ServiceError, is_hostmaster, operation_cancel

log = logging.getLogger("images")


class TooManyPending(ServiceError):
    code = 429


def customer_for(user, customer: Customer | None = None) -> Customer:
    """The customer a request acts for: the one named (if the user may), else the user's only one."""
    ids = customer_ids_of(user)
    if customer is not None:
        if customer.pk not in ids and not is_hostmaster(user):
            raise ValidationError({"customer": ["You are not a member of this customer."]})
        return customer
    if len(ids) != 1:
        raise ValidationError({"customer": ["Name the customer: you are a member of several (or none)."]})
    return Customer.objects.get(pk=ids[0])


# --- Public keys -----------------------------------------------------------------------------------


def public_key_create(*, customer: Customer, name: str, body: str) -> PublicKey:
    """Store an SSH public key, or return the customer's key with the same fingerprint."""
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name or len(name) > 80:
        errors["name"] = ["must be 1 to 80 characters long."]
    try:
        parse_public_key(body)
    except ValueError as exc:
        errors["body"] = [f"The key {exc}"]
    if errors:
        raise ValidationError(errors)
    body = " ".join(body.split())
    fingerprint = openssh_fingerprint(body)
    existing = PublicKey.objects.filter(customer=customer, fingerprint=fingerprint).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return PublicKey.objects.create(
                customer=customer, name=name, body=body, type=key_type(body), fingerprint=fingerprint
            )
    except IntegrityError:
        existing = PublicKey.objects.filter(customer=customer, fingerprint=fingerprint).first()
        if existing is not None:
            return existing
        raise ValidationError({"name": [f"You have another key named '{name}'."]}) from None


# --- Cloud accounts --------------------------------------------------------------------------------


def cloud_account_credential_errors(
    *, provider: str, role_arn: str, profile: str, external_id: str, has_keys: bool, operator_managed: bool
) -> dict[str, list[str]]:
    """What is wrong with how an account would authenticate. A customer's account must carry its own
    access key (a role is assumed with it, and with an external id, the confused-deputy guard of AWS);
    only an operator-managed account (a hostmaster's decision, in the admin) may name a profile of the
    service's machines or a role assumed with their credentials."""
    errors: dict[str, list[str]] = {}
    if role_arn and not role_arn.startswith("arn:"):
        errors["role_arn"] = ["must be a role's ARN (arn:aws:iam::ACCOUNT:role/NAME)."]
    if provider != ProviderName.AWS or operator_managed:
        if provider == ProviderName.AWS and not (has_keys or profile or role_arn):
            errors["access_key_id"] = ["give an access key, a profile or a role to assume."]
        return errors
    if profile:
        errors["profile"] = [
            "only an account a hostmaster manages may use a profile of the service's machines; give the "
            "account's own access key instead."
        ]
    if not has_keys:
        errors["access_key_id"] = [
            "give the account's own access key (and secret): the service never lends its own credentials."
        ]
    if role_arn and not external_id:
        errors["external_id"] = ["is required with role_arn: the role's trust policy must ask for it."]
    return errors


def cloud_account_create(
    *,
    customer: Customer,
    provider: str,
    name: str,
    account_id: str = "",
    role_arn: str = "",
    profile: str = "",
    external_id: str = "",
    access_key_id: str = "",
    secret_access_key: str = "",
) -> CloudAccount:
    """Register a customer's provider account; the credentials are stored encrypted and never shown
    again. It acts only through what it carries: never a profile or the worker machine's credentials."""
    errors: dict[str, list[str]] = {}
    if provider not in ProviderName.values:
        errors["provider"] = [f"must be one of {', '.join(ProviderName.values)}."]
    name = (name or "").strip()
    if not name or len(name) > 80:
        errors["name"] = ["must be 1 to 80 characters long."]
    errors.update(
        cloud_account_credential_errors(
            provider=provider,
            role_arn=role_arn.strip(),
            profile=profile.strip(),
            external_id=external_id.strip(),
            has_keys=bool(access_key_id),
            operator_managed=False,
        )
    )
    if bool(access_key_id) != bool(secret_access_key):
        errors["secret_access_key"] = ["give the access key id and the secret access key together."]
    if errors:
        raise ValidationError(errors)
    account = CloudAccount(
        customer=customer,
        provider=provider,
        name=name,
        account_id=account_id.strip(),
        role_arn=role_arn.strip(),
        profile=profile.strip(),
        external_id=external_id.strip(),
    )
    account.set_credentials({"access_key_id": access_key_id.strip(), "secret_access_key": secret_access_key})
    try:
        with transaction.atomic():
            account.save()
    except IntegrityError:
        raise ValidationError({"name": [f"You have a {provider} account named '{name}' already."]}) from None
    return account


# --- Build and launch ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Launch:
    build: ImageBuild
    reservation: Reservation
    operation: Operation


def _prefixed(prefix: str, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    return {f"{prefix}.{key}": value for key, value in errors.items()}


@dataclass(frozen=True)
class LaunchRequest:
    """A build-and-launch request that passed validation, with the rows it names."""

    name: str
    manifest: dict
    provider: str
    regions: list[str]
    details: dict
    account: CloudAccount | None
    pubkey: PublicKey | None


def image_build_launch_check(
    *, customer: Customer, name: Any, manifest: Any, launch: Any
) -> tuple[LaunchRequest | None, dict[str, list[str]]]:
    """Validate a build-and-launch request without storing anything: every problem at once, as field
    errors (`manifest.target.regions`, `launch.account`), or the request ready to start."""
    errors: dict[str, list[str]] = {}
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 80:
        errors["name"] = ["must be 1 to 80 characters long."]
    clean, manifest_errors = validate_manifest(manifest)
    errors.update(manifest_errors)
    target = clean.get("target") or {}
    provider = target.get("provider")
    regions = target.get("regions") if "manifest.target.regions" not in errors else []
    details, launch_errors = validate_launch(launch, provider=provider, regions=regions or [])
    errors.update(launch_errors)
    account = pubkey = None
    if details.get("account") is not None:
        account = CloudAccount.objects.filter(pk=_int(details["account"]), customer=customer).first()
        if account is None:
            errors["launch.account"] = ["is not one of your cloud accounts."]
        elif provider and account.provider != provider:
            errors["launch.account"] = [f"is a {account.provider} account; the manifest targets {provider}."]
        elif account.provider == ProviderName.AWS and not (
            account.has_credentials or account.operator_managed
        ):
            errors["launch.account"] = [
                f"the account '{account.name}' carries no access key of its own, and the service never "
                "lends its own: add the account's access key (or ask a hostmaster to manage the account)."
            ]
    elif provider == ProviderName.AWS:
        errors["launch.account"] = ["name the aws account to launch into (see /api/cloud-accounts/)."]
    if details.get("pubkey") is not None:
        pubkey = PublicKey.objects.filter(pk=_int(details["pubkey"]), customer=customer).first()
        if pubkey is None:
            errors["launch.pubkey"] = ["is not one of your public keys."]
    if errors:
        return None, errors
    return LaunchRequest(name, clean, provider, regions, details, account, pubkey), {}


def image_build_launch(
    *,
    customer: Customer,
    name: str,
    manifest: Any,
    launch: Any,
    user=None,
    status_listener: str = "",
    listener_key: str = "",
) -> Launch:
    """Build and launch: validate the manifest and the launch details (every problem at once, as
    field errors), store the build and its reservation, and start the build→launch saga on the
    provider's queue once the transaction commits. More unfinished reservations than the limit
    answer 429 (TooManyPending)."""
    request, errors = image_build_launch_check(customer=customer, name=name, manifest=manifest, launch=launch)
    if errors:
        raise ValidationError(errors)
    name, clean, provider, regions = request.name, request.manifest, request.provider, request.regions
    details, account, pubkey = request.details, request.account, request.pubkey
    if status_listener:
        import_string(status_listener)  # a typo must fail here, not in the middle of the saga

    with transaction.atomic():
        # The customer's row serializes concurrent requests, so the limit holds under a burst.
        Customer.objects.select_for_update().get(pk=customer.pk)
        limit = conf.pending_reservations_limit()
        pending = Reservation.objects.filter(
            customer=customer, provider=provider, finished_at__isnull=True
        ).count()
        if pending >= limit:
            raise TooManyPending(
                f"You have {pending} unfinished {provider} reservations; at most {limit} may run at once. "
                "Wait until one of them finishes (or cancel one), then submit again."
            )
        if details.get("public_key"):
            pubkey = public_key_create(
                customer=customer,
                name=f"{name}-{openssh_fingerprint(details['public_key'])[7:19]}",
                body=details["public_key"],
            )
        build = ImageBuild.objects.create(
            customer=customer,
            name=name,
            provider=provider,
            regions=regions,
            manifest=clean,
            one_off=details["one_off_image"],
            created_by=user if getattr(user, "pk", None) else None,
        )
        per_region = spread(details["amount"], regions)
        saga_clocks = clocks()
        reservation = Reservation.objects.create(
            customer=customer,
            build=build,
            provider=provider,
            account=account,
            pubkey=pubkey,
            amount=details["amount"],
            instance_type=details["instance_type"],
            detail={"instances_per_region": per_region, "inject_fault": details["inject_fault"]},
            status_listener=status_listener,
            listener_key=listener_key,
            created_by=user if getattr(user, "pk", None) else None,
        )
        operation = runner.start(
            kind=saga_kind(len(regions)),
            subject=reservation,
            customer=customer,
            data={
                "reservation_id": reservation.pk,
                "build_id": build.pk,
                "regions": regions,
                "clocks": saga_clocks,
            },
            queue=provider,
            timeout=timedelta(seconds=saga_clocks["build_timeout"] + saga_clocks["launch_timeout"] + 600),
        )
        Reservation.objects.filter(pk=reservation.pk).update(operation=operation)
        reservation.refresh_from_db()
        build.refresh_from_db()
    return Launch(build=build, reservation=reservation, operation=operation)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def reservation_cancel(*, reservation: Reservation, user=None, reason: str = "") -> Operation:
    """Cancel a reservation's launch: it stops and terminates what it launched."""
    if reservation.operation_id is None:
        raise ServiceError("This reservation has no operation.")
    return operation_cancel(operation=reservation.operation, user=user, reason=reason)


def reservation_terminate(*, reservation: Reservation, user=None) -> int:
    """Terminate the instances of a finished reservation (found by its tag, so none is missed);
    returns how many were still there. A launch that still runs is cancelled instead."""
    from images.sagas import provider_of, terminate_reservation

    if reservation.is_active:
        raise Conflict("The launch is still running: cancel it instead (that terminates what it launched).")
    try:
        return terminate_reservation(provider_of(reservation), reservation, list(reservation.regions))
    except ProviderError as exc:
        raise ServiceError(f"The provider did not terminate the instances: {exc.message}", code=502) from exc


# --- The saga's status hook ------------------------------------------------------------------------


def step_titles(saga: Saga) -> list[str]:
    return [group[0].title for group in saga.groups()]


def _status_text(reservation: Reservation, view: StatusView, titles: list[str]) -> str:
    if view.state == OperationState.SUCCEEDED:
        per_region = ", ".join(f"{r}: {n}" for r, n in reservation.regions.items())
        return f"Done: {reservation.amount} instances launched ({per_region})."
    if view.state in (OperationState.FAILED, OperationState.TIMED_OUT, OperationState.CANCELLED):
        label = OperationState(view.state).label
        return f"{label} at step {view.step} of {view.steps} ({titles[view.step - 1]}): {view.error}"
    return view.message


def reservation_write_status(*, operation: Operation, view: StatusView, saga: Saga) -> None:
    """Write the operation's status onto its reservation and build (and tell the reservation's status
    listener). Runs inside the transaction that changes the operation row."""
    reservation = Reservation.objects.select_related("build").filter(pk=operation.subject_id).first()
    if reservation is None:
        return
    titles = step_titles(saga)
    terminal = view.state in TERMINAL_STATES
    reservation.state = view.state
    reservation.step = view.step
    reservation.steps = view.steps
    reservation.step_titles = titles
    reservation.status = _status_text(reservation, view, titles)[:500]
    reservation.error = view.error if terminal and view.state != OperationState.SUCCEEDED else ""
    reservation.success = (view.state == OperationState.SUCCEEDED) if terminal else None
    reservation.finished_at = (operation.finished_at or timezone.now()) if terminal else None
    reservation.save(
        update_fields=[
            "state",
            "step",
            "steps",
            "step_titles",
            "status",
            "error",
            "success",
            "finished_at",
            "updated_at",
        ]
    )
    _write_build_status(reservation.build, operation, terminal)
    if reservation.status_listener:
        try:
            with transaction.atomic():  # a savepoint: a failing listener never breaks the saga
                import_string(reservation.status_listener)(reservation=reservation, view=view)
        except Exception:
            log.exception(
                "reservation %s: the status listener %s failed", reservation.pk, reservation.status_listener
            )


def _write_build_status(build: ImageBuild, operation: Operation, terminal: bool) -> None:
    data = operation.data
    image_ids = {r: data[f"image:{r}"] for r in build.regions if f"image:{r}" in data}
    steps = operation.steps
    builds = [steps.get(f"build_{i}", {}) for i in range(len(build.regions))]
    if data.get("image_ready"):
        deleted = all(data.get(f"deleted:{r}") for r in image_ids)
        status = BuildStatus.DELETED if deleted else BuildStatus.READY
    elif terminal or any(b.get("status") == StepStatus.FAILED for b in builds):
        status = BuildStatus.FAILED
    elif image_ids or any(b.get("status") == StepStatus.RUNNING for b in builds):
        status = BuildStatus.BUILDING
    else:
        status = BuildStatus.PENDING
    error = operation.error_message if status == BuildStatus.FAILED else ""
    if (build.status, build.image_ids, build.error) != (status, image_ids, error):
        ImageBuild.objects.filter(pk=build.pk).update(
            status=status, image_ids=image_ids, error=error, updated_at=timezone.now()
        )


def local_instances_reconcile() -> int:
    """Write what the local provider says of each of its instances (state, address) onto their rows,
    so that pages and the API never say "running" of an instance that is not: a worker runs it after
    stopping the instances at shutdown, and after starting them again at the next start (when their
    ports change). Answers how many rows changed."""
    provider = LocalProvider(latency=0)
    rows = list(
        ReservationInstance.objects.filter(reservation__provider=ProviderName.LOCAL).exclude(
            state=InstanceState.TERMINATED
        )
    )
    regions: dict[str, list[str]] = {}
    for row in rows:
        regions.setdefault(row.region, []).append(row.instance_id)
    found = {
        instance.id: instance
        for region, ids in regions.items()
        for instance in provider.describe_instances(region=region, instance_ids=ids, _internal=True)
    }
    changed = 0
    for row in rows:
        instance = found.get(row.instance_id)
        state = instance.state if instance else InstanceState.TERMINATED
        detail = instance.detail() if instance else row.detail
        if (row.state, row.detail) != (state, detail):
            ReservationInstance.objects.filter(pk=row.pk).update(state=state, detail=detail)
            changed += 1
    return changed
