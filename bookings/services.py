"""Business actions of the bookings app: projects, booking items (with their created-event and its
saga), hosting assets, and what hostmasters do with waiting events. Views, admin actions, saga steps
and commands call these; none holds logic of its own."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import IntegerField, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from bookings.choices import (
    SIGNAL_ACTORS,
    Actor,
    BookingItemType,
    EventStatus,
    HostingAssetType,
    SignalName,
)
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from bookings.ownership import domain_booking_errors
from bookings.validation import Errors, flatten
from bookings.validation.asset_data import validate_asset_data
from bookings.validation.assets import CONFIGS, HIERARCHY, hierarchy_errors, identifier_error
from bookings.validation.domains import normalize
from bookings.validation.resources import POOLED, pool_overflow, validate_parent, validate_resources
from bookings.verification import verification_code
from images.models import Reservation
from images.services import image_build_launch_check
from provisioning.choices import TERMINAL_STATES, OperationState
from provisioning.env import env_float
from provisioning.models import Customer, Operation
from provisioning.saga import runner
from provisioning.saga.definition import StatusView
from provisioning.selectors import customer_ids_of
from provisioning.services import (
    Conflict,
    ServiceError,
    is_hostmaster,
    operation_cancel,
    operation_retry,
    operation_signal,
)

log = logging.getLogger("bookings")

# Which saga creates the assets of each booking type (bookings.sagas).
SAGA_KINDS = {
    BookingItemType.MANAGED_WEBSPACE: "bookings.webspace",
    BookingItemType.DOMAIN_SETUP: "bookings.domain_setup",
    BookingItemType.MANAGED_SERVER: "bookings.manual_setup",
    BookingItemType.PRIVATE_CLOUD: "bookings.manual_setup",
    BookingItemType.CLOUD_SERVER: "bookings.manual_setup",
}


def _setting(name: str, default: float) -> float:
    """A bookings setting: Django settings first (tests override there), then the environment."""
    return float(getattr(settings, name, env_float(name, default)))


def saga_clocks() -> dict[str, float]:
    """The clocks an asset-creation saga runs by, fixed when it starts and kept in its row, so that a
    change of settings does not change the rhythm of sagas already waiting."""
    return {
        "dns_recheck": _setting("BOOKINGS_DNS_RECHECK", 60.0),  # first re-check of the TXT record
        "dns_recheck_max": _setting("BOOKINGS_DNS_RECHECK_MAX", 3600.0),
        "dns_give_up": _setting("BOOKINGS_DNS_GIVE_UP", 14 * 86400.0),
        "hostmaster_recheck": _setting("BOOKINGS_HOSTMASTER_RECHECK", 3600.0),
        "hostmaster_give_up": _setting("BOOKINGS_HOSTMASTER_GIVE_UP", 30 * 86400.0),
    }


# --- Projects ------------------------------------------------------------------------------------


def _customer_for(user, customer: Customer | None) -> Customer:
    ids = customer_ids_of(user)
    if customer is not None:
        if customer.pk not in ids and not is_hostmaster(user):
            raise ValidationError({"customer": ["You are not a member of this customer."]})
        return customer
    if len(ids) != 1:
        raise ValidationError({"customer": ["Name the customer: you are a member of several (or none)."]})
    return Customer.objects.get(pk=ids[0])


def project_create(*, user, caption: str, customer: Customer | None = None) -> Project:
    customer = _customer_for(user, customer)
    caption = (caption or "").strip()
    if not caption:
        raise ValidationError({"caption": ["This field is required."]})
    try:
        with transaction.atomic():
            return Project.objects.create(customer=customer, caption=caption)
    except IntegrityError:
        raise ValidationError({"caption": [f"The customer already has a project '{caption}'."]}) from None


# --- Booking items -------------------------------------------------------------------------------


def _booking_errors(
    *,
    project: Project,
    parent_item: BookingItem | None,
    item_type: str,
    caption: str,
    resources: Any,
    valid_from: date | None,
    valid_to: date | None,
    hosting_asset: Any,
) -> Errors:
    errors: Errors = {}
    if item_type not in BookingItemType.values:
        return {
            "type": [f"'{item_type}' is not a booking-item type: one of {', '.join(BookingItemType.values)}."]
        }
    if not (caption or "").strip():
        errors["caption"] = ["This field is required."]
    elif len(caption) > 80:
        errors["caption"] = ["must be at most 80 characters long."]
    if parent_item is not None and parent_item.project_id != project.pk:
        errors["parent_item"] = ["belongs to another project."]
    else:
        problem = validate_parent(item_type, parent_item.type if parent_item else None)
        if problem:
            errors["parent_item"] = [problem]
    resource_errors = validate_resources(item_type, resources)
    if not resource_errors and item_type == BookingItemType.DOMAIN_SETUP:
        resource_errors = domain_booking_errors(customer_id=project.customer_id, resources=resources)
    if resource_errors:
        errors["resources"] = resource_errors  # type: ignore[assignment]
    if valid_from and valid_to and valid_to < valid_from:
        errors["valid_to"] = ["must not be before valid_from."]
    if hosting_asset is not None:
        asset_errors = validate_asset_data(
            item_type, hosting_asset, resources if isinstance(resources, dict) else {}
        )
        if not asset_errors and item_type == BookingItemType.CLOUD_SERVER and "launch" in hosting_asset:
            asset_errors = _launch_errors(project.customer, caption, hosting_asset)
        if asset_errors:
            errors["hosting_asset"] = asset_errors  # type: ignore[assignment]
    return errors


def _pool_errors(parent_item: BookingItem, resources: dict, *, exclude: BookingItem | None = None) -> Errors:
    """What booking `resources` under `parent_item` would take beyond what the parent has left; the
    siblings' share is summed by the database."""
    keys = [key for key in POOLED if key in parent_item.resources and key in resources]
    if not keys:
        return {}
    siblings = parent_item.sub_items.exclude(pk=exclude.pk) if exclude else parent_item.sub_items.all()
    used = siblings.aggregate(
        **{key: Sum(Cast(KeyTextTransform(key, "resources"), IntegerField())) for key in keys}
    )
    return pool_overflow(parent_item.resources, used, resources)


def _launch_errors(customer: Customer, caption: str, data: dict) -> Errors:
    """A cloud server launched through build→launch: the launch is checked now, as the images API
    would check it, so that a request that would fail later is refused before anything is stored."""
    launch = data["launch"]
    errors: Errors = {}
    for key in sorted(set(launch) - {"manifest", "launch"}):
        errors[f"launch.{key}"] = ["is not a field here: one of launch, manifest."]
    if not data.get("identifier"):
        errors["identifier"] = ["name the server to launch (vm followed by 4 digits)."]
    _, launch_errors = image_build_launch_check(
        customer=customer, name=caption, manifest=launch.get("manifest"), launch=launch.get("launch")
    )
    errors.update({f"launch.{path}": messages for path, messages in launch_errors.items() if path != "name"})
    return errors


def booking_item_errors(
    *,
    user,
    project: Project,
    type: str,
    caption: str,
    resources: dict | None = None,
    parent_item: BookingItem | None = None,
    hosting_asset: dict | None = None,
) -> dict[str, list[str]]:
    """What `booking_item_create` would refuse, as flat field errors (`resources.CPU`), storing
    nothing: the wizard checks each of its steps with it."""
    if project.customer_id not in customer_ids_of(user) and not is_hostmaster(user):
        return {"project": ["Unknown project."]}
    errors = _booking_errors(
        project=project,
        parent_item=parent_item,
        item_type=type,
        caption=caption,
        resources=dict(resources or {}),
        valid_from=None,
        valid_to=None,
        hosting_asset=hosting_asset,
    )
    if not errors and parent_item is not None:
        errors = {"resources": _pool_errors(parent_item, dict(resources or {}))}
    return flatten(errors)


def booking_item_create(
    *,
    user,
    project: Project | None,
    type: str,
    caption: str,
    resources: dict | None = None,
    parent_item: BookingItem | None = None,
    valid_from: date | None = None,
    valid_to: date | None = None,
    hosting_asset: dict | None = None,
) -> BookingItem:
    """Book an item. With `hosting_asset`, store its BookingItemCreatedEvent in the same transaction
    and start the saga that creates the assets; whatever happens to them later, the booking stays."""
    if project is None and parent_item is not None:
        project = parent_item.project
    if project is None:
        raise ValidationError({"project": ["Name the project (or a parent item)."]})
    if project.customer_id not in customer_ids_of(user) and not is_hostmaster(user):
        raise ValidationError({"project": ["Unknown project."]})
    resources = dict(resources or {})
    errors = _booking_errors(
        project=project,
        parent_item=parent_item,
        item_type=type,
        caption=caption,
        resources=resources,
        valid_from=valid_from,
        valid_to=valid_to,
        hosting_asset=hosting_asset,
    )
    if errors:
        raise ValidationError(flatten(errors))
    if type == BookingItemType.DOMAIN_SETUP:
        resources["domainName"] = normalize(resources["domainName"])
        resources["verificationCode"] = verification_code(
            customer_id=project.customer_id, domain=resources["domainName"]
        )
    # The first steps of the saga run in this request, so that the answer says what is missing.
    inline_steps = int(_setting("BOOKINGS_INLINE_STEPS", 2))
    with transaction.atomic():
        item = BookingItem.objects.create(
            project=project,
            parent_item=parent_item,
            type=type,
            caption=caption.strip(),
            resources=resources,
            valid_from=valid_from or timezone.localdate(),
            valid_to=valid_to,
        )
        operation = None
        if hosting_asset:
            event = BookingItemCreatedEvent.objects.create(booking_item=item, asset_data=hosting_asset)
            operation = _start_saga(event, item, project.customer, send=not inline_steps)
        if parent_item is not None:
            # Siblings booked at the same time take their share of the parent one after the other: the
            # parent's row stays locked until this transaction ends (and is undone on an overflow).
            BookingItem.objects.select_for_update().filter(pk=parent_item.pk).values_list("pk").get()
            pool_errors = _pool_errors(parent_item, resources, exclude=item)
            if pool_errors:
                raise ValidationError(flatten({"resources": pool_errors}))
    if operation is not None and inline_steps:
        _advance_inline(operation, inline_steps)
    return item


def _advance_inline(operation: Operation, steps: int) -> None:
    """Run the first steps (validate, then the check for what is missing: they only read) in the
    request, after the commit, so that the 201 already says what the booking waits for; the workers
    get the rest. A step's error stays on the operation and never reaches the booking; an operation
    this left unsent (the database or the broker went away) is sent by the sweeper."""
    try:
        runner.run_here(operation, steps)
    except Exception:  # the booking stands; the sweeper carries on from the row
        log.exception("operation %s: the inline start failed; the sweeper goes on", operation.pk)


def _start_saga(
    event: BookingItemCreatedEvent, item: BookingItem, customer: Customer, *, send: bool
) -> Operation:
    """Called inside the transaction that stores the event; with `send`, the saga goes to the workers
    on commit, else the request runs its first steps itself (`_advance_inline`)."""
    launches = item.type == BookingItemType.CLOUD_SERVER and "launch" in event.asset_data
    return runner.start(
        send=send,
        kind="bookings.cloud_server" if launches else SAGA_KINDS[item.type],
        subject=event,
        customer=customer,
        data={"event_id": event.pk, "booking_item_id": item.pk, "clocks": saga_clocks()},
        queue="default",
    )


def event_write_status(*, operation: Operation, view: StatusView) -> None:
    """The saga's status hook: runs in the transaction that changes the operation row. An event that
    was deleted (its assets exist) has nothing left to show."""
    waiting = view.state == OperationState.WAITING
    actor = SIGNAL_ACTORS.get(operation.waiting_for, Actor.HOSTMASTER) if waiting else Actor.NOBODY
    if view.state in (OperationState.FAILED, OperationState.TIMED_OUT):
        actor = Actor.HOSTMASTER  # somebody must look at it: fix the cause and retry, or cancel
    BookingItemCreatedEvent.objects.filter(pk=operation.subject_id).update(
        operation=operation,
        status=view.state,
        status_message=(view.error or view.message)[:500],
        instructions=view.instructions,
        waiting_for=actor,
        updated_at=timezone.now(),
    )


def event_launch_status(*, reservation: Reservation, view: StatusView) -> None:
    """The status listener of a cloud server's launch (`image_build_launch(status_listener=...)`):
    runs in the transaction of every status change of the launch and writes it onto the booking's
    event; the launch's end wakes the booking's saga, which reads the outcome from the reservation."""
    operation = Operation.objects.filter(pk=reservation.listener_key).first()
    if operation is None or operation.is_terminal:
        return
    BookingItemCreatedEvent.objects.filter(pk=operation.subject_id).update(
        status_message=f"Launching the server: {reservation.status}"[:500], updated_at=timezone.now()
    )
    if view.state in TERMINAL_STATES:
        operation_signal(operation=operation, name=SignalName.SERVER_LAUNCHED, payload={"state": view.state})


# --- Hosting assets ------------------------------------------------------------------------------


def hosting_asset_errors(
    *,
    type: str,
    identifier: str,
    config: Any,
    parent_asset: HostingAsset | None,
    assigned_to_asset: HostingAsset | None,
    booking_item: BookingItem | None,
) -> Errors:
    if type not in HIERARCHY:
        return {"type": [f"'{type}' is not a hosting-asset type."]}
    errors = hierarchy_errors(
        type,
        parent_asset.type if parent_asset else None,
        assigned_to_asset.type if assigned_to_asset else None,
        booking_item.type if booking_item else None,
    )
    problem = identifier_error(type, identifier, parent_asset.identifier if parent_asset else None)
    if problem:
        errors["identifier"] = [problem]
    config_errors = CONFIGS[type].validate(config)
    if config_errors:
        errors["config"] = config_errors  # type: ignore[assignment]
    return errors


def hosting_asset_create(
    *,
    type: str,
    identifier: str,
    caption: str = "",
    config: dict | None = None,
    customer: Customer | None = None,
    booking_item: BookingItem | None = None,
    parent_asset: HostingAsset | None = None,
    assigned_to_asset: HostingAsset | None = None,
    created_by: Operation | None = None,
) -> HostingAsset:
    """Store a valid asset, or raise ValidationError naming every bad field (the database trigger
    refuses what slips past this, e.g. a parent whose type changed meanwhile)."""
    errors = hosting_asset_errors(
        type=type,
        identifier=identifier,
        config=config,
        parent_asset=parent_asset,
        assigned_to_asset=assigned_to_asset,
        booking_item=booking_item,
    )
    if errors:
        raise ValidationError(flatten(errors))
    if customer is None and booking_item is not None:
        customer = booking_item.project.customer
    if customer is None and parent_asset is not None:
        customer = parent_asset.customer
    try:
        with transaction.atomic():
            return HostingAsset.objects.create(
                type=type,
                identifier=identifier,
                caption=caption[:80],
                config=CONFIGS[type].with_defaults(config or {}),
                customer=customer,
                booking_item=booking_item,
                parent_asset=parent_asset,
                assigned_to_asset=assigned_to_asset,
                created_by=created_by,
            )
    except IntegrityError as exc:
        if HostingAsset.objects.filter(type=type, identifier=identifier).exists():
            raise ValidationError({"identifier": [f"a {type} '{identifier}' exists already."]}) from exc
        raise


# --- Hostmaster actions on waiting events --------------------------------------------------------


def _operation_of(event: BookingItemCreatedEvent) -> Operation:
    if event.operation_id is None:
        raise ServiceError("This event has no operation.")
    return Operation.objects.get(pk=event.operation_id)


def _require_hostmaster(user) -> None:
    if user is not None and not is_hostmaster(user):
        raise ServiceError("Only a hostmaster may do this.", code=403)


def event_assign_target_server(*, event: BookingItemCreatedEvent, server_identifier: str, user=None) -> None:
    """A hostmaster chooses the managed server a waiting webspace is created on."""
    _require_hostmaster(user)
    if event.booking_item.type != BookingItemType.MANAGED_WEBSPACE:
        raise ServiceError("Only a managed webspace takes a target server.")
    server = HostingAsset.objects.filter(
        type=HostingAssetType.MANAGED_SERVER, identifier=(server_identifier or "").strip()
    ).first()
    if server is None:
        raise ServiceError(f"There is no managed server '{server_identifier}'.")
    operation_signal(
        operation=_operation_of(event),
        name=SignalName.SERVER_ASSIGNED,
        payload={"server": server.identifier},
        user=user,
    )


def event_mark_setup_done(*, event: BookingItemCreatedEvent, identifier: str = "", user=None) -> None:
    """A hostmaster finished the manual setup (a managed server, a private cloud, a cloud server)."""
    _require_hostmaster(user)
    if SAGA_KINDS.get(event.booking_item.type) != "bookings.manual_setup":
        raise ServiceError("This booking is not set up by hand.")
    identifier = (identifier or "").strip()
    item_type = event.booking_item.type
    if item_type in (BookingItemType.MANAGED_SERVER, BookingItemType.CLOUD_SERVER):
        identifier = identifier or event.asset_data.get("identifier", "")
        problem = identifier_error(item_type, identifier, None)
        if problem:
            raise ServiceError(f"Name the server that was set up: it {problem}")
        if HostingAsset.objects.filter(type=item_type, identifier=identifier).exists():
            raise ServiceError(f"A {item_type} '{identifier}' exists already.")
    payload = {"identifier": identifier} if identifier else {}
    operation_signal(operation=_operation_of(event), name=SignalName.SETUP_DONE, payload=payload, user=user)


@transaction.atomic
def event_retry(*, event: BookingItemCreatedEvent, user=None) -> Operation:
    """Run a waiting or retrying event's step now; start a failed, cancelled or timed-out one anew."""
    _require_hostmaster(user)
    event = (
        BookingItemCreatedEvent.objects.select_for_update()
        .select_related("booking_item__project")
        .get(pk=event.pk)
    )
    op = Operation.objects.filter(pk=event.operation_id).first()
    if op is not None and op.is_active:
        return operation_retry(operation=op, user=user)
    item = event.booking_item
    return _start_saga(event, item, item.project.customer, send=True)


def event_cancel(*, event: BookingItemCreatedEvent, user=None, reason: str = "") -> Operation:
    _require_hostmaster(user)
    op = _operation_of(event)
    if event.status not in (
        EventStatus.PENDING,
        EventStatus.RUNNING,
        EventStatus.RETRYING,
        EventStatus.WAITING,
    ):
        raise Conflict(f"The event is {event.get_status_display().lower()}; it cannot be cancelled.")
    return operation_cancel(operation=op, user=user, reason=reason)
