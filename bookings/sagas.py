"""The hosting-asset creation sagas: validate → wait for what is missing → create the assets →
delete the event. Their status reaches the BookingItemCreatedEvent through `write_status`.

One saga per way an asset comes to be: a webspace waits for its server, a domain for the proof of
ownership, servers and private clouds for a hostmaster's manual setup.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from bookings.choices import BookingItemType, HostingAssetType, SignalName
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset
from bookings.ownership import domain_taken_by_other, domain_taken_message
from bookings.services import event_write_status, hosting_asset_create
from bookings.validation.asset_data import validate_asset_data
from bookings.validation.domains import candidate_names, normalize
from bookings.verification import DnsUnavailable, instructions, verification_code, verify_ownership
from images.choices import ReservationState
from images.models import Reservation
from images.services import TooManyPending, image_build_launch, reservation_cancel, reservation_terminate
from provisioning.models import StepRun
from provisioning.saga import Done, RetryAfter, RetryPolicy, Saga, Step, StepFailed, WaitForSignal
from provisioning.saga.steps import StepTimedOut
from provisioning.services import is_hostmaster

A = HostingAssetType
LAUNCH_LISTENER = "bookings.services.event_launch_status"


def _event(ctx) -> BookingItemCreatedEvent:
    event = (
        BookingItemCreatedEvent.objects.select_related("booking_item__project")
        .filter(pk=ctx.data["event_id"])
        .first()
    )
    if event is None:
        raise StepFailed("The booking's asset data is gone (the event was deleted): nothing to create.")
    return event


def _item(ctx) -> BookingItem:
    return BookingItem.objects.select_related("project", "parent_item").get(pk=ctx.data["booking_item_id"])


def _clock(ctx, name: str) -> float:
    return float(ctx.data.get("clocks", {}).get(name, 60.0))


def _waited_too_long(ctx, limit: float) -> bool:
    """Whether this step has been trying (its first attempt, from the timeline) for `limit` seconds.
    The timeline is the engine's own record, so this clock survives crashes and re-deliveries."""
    first = (
        StepRun.objects.filter(operation_id=ctx.operation.pk, step=ctx.step.name)
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    return first is not None and (ctx.now() - first).total_seconds() > limit


def _from_hostmaster(payload: dict) -> bool:
    user = get_user_model().objects.filter(pk=payload.get("_sent_by")).first()
    return user is not None and is_hostmaster(user)


def _invalid(error: ValidationError) -> StepFailed:
    detail = error.message_dict if hasattr(error, "error_dict") else error.messages
    return StepFailed(f"The asset data is not valid: {detail}. Book again with corrected data.", str(detail))


class ValidateAssetData(Step):
    """Check what depends on the rest of the database: identifiers free, referenced assets there."""

    name = "validate"
    title = "Validate the asset data"
    weight = 1
    reads_only = True
    retry = RetryPolicy(max_attempts=3, backoff=1.0)

    def run(self, ctx) -> Done:
        event = _event(ctx)
        item = event.booking_item
        data = event.asset_data
        errors = validate_asset_data(item.type, data, item.resources)
        if errors:
            raise StepFailed(f"The asset data is not valid: {errors}.")
        customer_id = item.project.customer_id
        if item.type == BookingItemType.MANAGED_WEBSPACE:
            self._free((A.MANAGED_WEBSPACE, A.UNIX_USER), data["identifier"], ctx)
        elif item.type == BookingItemType.DOMAIN_SETUP:
            domain = normalize(item.resources["domainName"])
            self._free((A.DOMAIN_SETUP,), domain, ctx)
            webspace = HostingAsset.objects.filter(
                type=A.MANAGED_WEBSPACE, identifier=data["webspace"], customer_id=customer_id
            ).first()
            if webspace is None:
                raise StepFailed(f"You have no webspace '{data['webspace']}' to serve {domain} from.")
            user_name = data.get("unix_user") or webspace.identifier
            unix_user = HostingAsset.objects.filter(
                type=A.UNIX_USER, identifier=user_name, parent_asset=webspace
            ).first()
            if unix_user is None:
                raise StepFailed(f"The webspace '{webspace.identifier}' has no unix user '{user_name}'.")
            return Done({"domain": domain, "webspace_id": webspace.pk, "unix_user_id": unix_user.pk})
        elif item.type in (BookingItemType.MANAGED_SERVER, BookingItemType.CLOUD_SERVER):
            if data.get("identifier"):
                self._free((item.type,), data["identifier"], ctx)
        return Done({})

    @staticmethod
    def _free(asset_types: tuple[str, ...], identifier: str, ctx) -> None:
        """Refuse an identifier that an asset of one of `asset_types` not created by this saga has."""
        taken = (
            HostingAsset.objects.filter(type__in=asset_types, identifier=identifier)
            .exclude(created_by_id=ctx.operation.pk)
            .values_list("type", flat=True)
            .first()
        )
        if taken is not None:
            raise StepFailed(f"A {taken} '{identifier}' exists already: book again with another name.")


class TargetServer(Step):
    """The webspace's server: the booking's server asset, else the one a hostmaster assigns."""

    name = "target_server"
    title = "Find the target server"
    weight = 2
    reads_only = True

    def run(self, ctx):
        event = _event(ctx)
        data, item = event.asset_data, event.booking_item
        server = None
        if data.get("parent_asset"):
            server = HostingAsset.objects.filter(
                type=A.MANAGED_SERVER, identifier=data["parent_asset"], customer_id=item.project.customer_id
            ).first()
        if server is None and item.parent_item_id:
            server = HostingAsset.objects.filter(
                type=A.MANAGED_SERVER, booking_item_id=item.parent_item_id
            ).first()
        note = ""
        while server is None:
            payload = ctx.signal(SignalName.SERVER_ASSIGNED)
            if payload is None:
                break
            if not _from_hostmaster(payload):
                note = " (a target server sent by somebody who is not a hostmaster was ignored)"
                continue
            server = HostingAsset.objects.filter(
                type=A.MANAGED_SERVER, identifier=payload.get("server")
            ).first()
            if server is None:
                note = f" (the assigned server '{payload.get('server')}' does not exist)"
        if server is not None:
            return Done({"server_id": server.pk})
        if _waited_too_long(ctx, _clock(ctx, "hostmaster_give_up")):
            raise StepTimedOut(
                "No hostmaster assigned a target server in time; the webspace was not created."
            )
        return WaitForSignal(
            SignalName.SERVER_ASSIGNED,
            timedelta(seconds=_clock(ctx, "hostmaster_recheck")),
            instructions=(
                f"A hostmaster must choose the managed server for webspace '{data.get('identifier')}': "
                "admin → Booking item created events → action 'Assign target server'."
            ),
            message=f"waiting for a hostmaster to assign a target server{note}",
        )

    def on_wait_timeout(self, ctx):
        return self.run(ctx)  # look again: the booking's server may exist by now


class VerifyOwnership(Step):
    """The domain's TXT record, re-checked with backoff and at once on "record_added"."""

    name = "verify_ownership"
    title = "Verify the domain's ownership"
    weight = 2
    reads_only = True
    retry = RetryPolicy(max_attempts=8, backoff=5.0, max_interval=300.0)

    def run(self, ctx):
        item = _item(ctx)
        domain = ctx.data["domain"]
        customer_id = item.project.customer_id
        # The code is recomputed, not read from the booking: a row stored before codes were bound to
        # the customer may hold one the customer chose (and anybody could have published).
        code = verification_code(customer_id=customer_id, domain=domain)
        ctx.signal(SignalName.RECORD_ADDED)  # whatever it says, we look now; consume it
        taken = domain_taken_by_other(customer_id=customer_id, domain=domain)
        if taken is not None:  # another customer's setup came to be after this booking
            raise StepFailed(f"{domain_taken_message(domain, taken)} Nothing was created.")
        # A super-domain this customer has set up already proves ownership of its sub-domains.
        parent = (
            HostingAsset.objects.filter(
                type=A.DOMAIN_SETUP,
                identifier__in=candidate_names(domain)[1:],
                customer_id=item.project.customer_id,
            )
            .order_by("-identifier")
            .first()
        )
        if parent is not None:
            return Done(
                {"parent_setup_id": parent.pk, "proof": f"the super-domain {parent.identifier} is yours"}
            )
        try:
            result = verify_ownership(domain, code)
        except DnsUnavailable as exc:
            return RetryAfter(min(300.0, 5.0 * ctx.attempt), reason=str(exc))
        if result.proven:
            return Done({"proof": result.reason})
        checks = ctx.attempt  # every check is an attempt of this step; the row counts them
        if _waited_too_long(ctx, _clock(ctx, "dns_give_up")):
            raise StepTimedOut(f"Ownership of {domain} was not proven in time: {result.reason}")
        delay = min(_clock(ctx, "dns_recheck_max"), _clock(ctx, "dns_recheck") * 2 ** (checks - 1))
        return WaitForSignal(
            SignalName.RECORD_ADDED,
            timedelta(seconds=delay),
            instructions=instructions(domain, code),
            message=f"waiting for the DNS TXT record ({result.reason} next check in {delay:.0f} s)",
        )

    def on_wait_timeout(self, ctx):
        return self.run(ctx)  # the backoff delay passed: check again


class ManualSetup(Step):
    """Servers and private clouds are set up by a hostmaster, who says so from the admin."""

    name = "manual_setup"
    title = "Wait for the manual setup"
    weight = 2
    reads_only = True

    def run(self, ctx):
        item = _item(ctx)
        note = ""
        while True:
            payload = ctx.signal(SignalName.SETUP_DONE)
            if payload is None:
                break
            if _from_hostmaster(payload):
                return Done(
                    {"identifier": payload.get("identifier") or _event(ctx).asset_data.get("identifier")}
                )
            note = " (a 'setup done' from somebody who is not a hostmaster was ignored)"
        if _waited_too_long(ctx, _clock(ctx, "hostmaster_give_up")):
            raise StepTimedOut(f"No hostmaster finished the setup of {item.caption} in time.")
        return WaitForSignal(
            SignalName.SETUP_DONE,
            timedelta(seconds=_clock(ctx, "hostmaster_give_up")),
            instructions=(
                f"A hostmaster must set up the {item.get_type_display().lower()} '{item.caption}' by hand, then "
                "mark it done: admin → Booking item created events → action 'Mark manual setup done' "
                "(with the server's identifier, vm1234, where a server asset follows)."
            ),
            message=f"waiting for a hostmaster to set it up{note}",
        )


class LaunchServer(Step):
    """A cloud server is launched through the images app's build→launch saga; every status change of
    the launch reaches the event through `event_launch_status`, whose signal wakes this step at the
    launch's end. The reservation row is the truth: a lost or forged signal changes nothing."""

    name = "launch_server"
    title = "Launch the server"
    weight = 2
    retry = RetryPolicy(max_attempts=5, backoff=5.0, max_interval=120.0)

    def run(self, ctx):
        reservation = self._reservation(ctx)
        if isinstance(reservation, RetryAfter):
            return reservation
        ctx.signal(SignalName.SERVER_LAUNCHED)  # consume it: the reservation below says what happened
        if reservation.state == ReservationState.SUCCEEDED:
            instance = reservation.instances.order_by("region", "instance_id").first()
            if instance is None:
                raise StepFailed("The launch succeeded without an instance; book the server again.")
            detail = instance.detail
            launched = {
                "provider": reservation.provider,
                "region": instance.region,
                "instance": instance.instance_id,
                "image": detail.get("image_id", ""),
                "address": detail.get("public_ip") or detail.get("private_ip") or detail.get("dns_name", ""),
                "reservation": reservation.pk,
            }
            return Done({"identifier": _event(ctx).asset_data["identifier"], "launched": launched})
        if reservation.is_terminal:
            raise StepFailed(
                f"The server's launch ended {reservation.get_state_display().lower()}: {reservation.error} "
                "Retry the booking's event once the cause is fixed, or book again.",
                f"reservation {reservation.pk}: {reservation.status}",
            )
        return WaitForSignal(
            SignalName.SERVER_LAUNCHED,
            timedelta(seconds=60),  # a look at the reservation even if no signal comes
            instructions="",
            message=f"launching the server: {reservation.status or 'queued'}",
        )

    def on_wait_timeout(self, ctx):
        return self.run(ctx)

    def _reservation(self, ctx) -> Reservation | RetryAfter:
        # The listener key is this operation: a launch started before a crash is found, not repeated.
        reservation = Reservation.objects.filter(
            status_listener=LAUNCH_LISTENER, listener_key=str(ctx.operation.pk)
        ).first()
        if reservation is not None:
            return reservation
        event, item = _event(ctx), _item(ctx)
        launch = event.asset_data["launch"]
        try:
            started = image_build_launch(
                customer=item.project.customer,
                name=item.caption,
                manifest=launch.get("manifest"),
                launch=launch.get("launch"),
                status_listener=LAUNCH_LISTENER,
                listener_key=str(ctx.operation.pk),
            )
        except TooManyPending as exc:
            return RetryAfter(60.0, reason=exc.message)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        return started.reservation

    def compensate(self, ctx) -> None:
        reservation = Reservation.objects.filter(
            status_listener=LAUNCH_LISTENER, listener_key=str(ctx.operation.pk)
        ).first()
        if reservation is None:
            return
        if reservation.is_active:
            reservation_cancel(reservation=reservation, reason="the booking's asset creation was undone")
        elif reservation.state == ReservationState.SUCCEEDED:
            reservation_terminate(reservation=reservation)


class CreateAssets(Step):
    """Create the assets in one transaction; a second run finds them (created_by) instead of failing."""

    name = "create_assets"
    title = "Create the hosting assets"
    weight = 3
    retry = RetryPolicy(max_attempts=3, backoff=1.0)

    def run(self, ctx) -> Done:
        event = _event(ctx)
        item = event.booking_item
        data = event.asset_data
        op = ctx.operation
        existing = list(HostingAsset.objects.filter(created_by_id=op.pk).values_list("pk", flat=True))
        if existing:
            return Done({"asset_ids": existing})
        common = dict(customer=item.project.customer, created_by=op)
        try:
            with transaction.atomic():
                created = self._create(ctx, item, data, common)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        return Done({"asset_ids": [a.pk for a in created]})

    def _create(self, ctx, item: BookingItem, data: dict, common: dict) -> list[HostingAsset]:
        caption = data.get("caption", "") or item.caption
        if item.type == BookingItemType.MANAGED_WEBSPACE:
            server = HostingAsset.objects.get(pk=ctx.data["server_id"])
            webspace = hosting_asset_create(
                type=A.MANAGED_WEBSPACE,
                identifier=data["identifier"],
                caption=caption,
                config=data.get("config") or {},
                booking_item=item,
                parent_asset=server,
                **common,
            )
            user = hosting_asset_create(
                type=A.UNIX_USER,
                identifier=webspace.identifier,
                caption=f"{caption} (main user)",
                config=data.get("unix_user") or {},
                parent_asset=webspace,
                **common,
            )
            return [webspace, user]
        if item.type == BookingItemType.DOMAIN_SETUP:
            domain = ctx.data["domain"]
            webspace = HostingAsset.objects.get(pk=ctx.data["webspace_id"])
            unix_user = HostingAsset.objects.get(pk=ctx.data["unix_user_id"])
            parent = HostingAsset.objects.filter(pk=ctx.data.get("parent_setup_id")).first()
            setup = hosting_asset_create(
                type=A.DOMAIN_SETUP,
                identifier=domain,
                caption=caption,
                booking_item=item,
                parent_asset=parent,
                **common,
            )
            subs = [
                (A.DOMAIN_DNS_SETUP, webspace, data.get("dns")),
                (A.DOMAIN_HTTP_SETUP, unix_user, data.get("http")),
                (A.DOMAIN_SMTP_SETUP, webspace, data.get("smtp")),
                (A.DOMAIN_MBOX_SETUP, webspace, data.get("mbox")),
            ]
            created = [setup]
            for asset_type, assigned, config in subs:
                created.append(
                    hosting_asset_create(
                        type=asset_type,
                        identifier=domain,
                        caption=f"{domain} {asset_type.split('_')[1]}",
                        config=config or {},
                        parent_asset=setup,
                        assigned_to_asset=assigned,
                        **common,
                    )
                )
            return created
        if item.type in (BookingItemType.MANAGED_SERVER, BookingItemType.CLOUD_SERVER):
            identifier = ctx.data.get("identifier")
            if not identifier:
                raise StepFailed(
                    "The hostmaster marked the setup done without naming the server (vm1234); "
                    "retry and name it."
                )
            return [
                hosting_asset_create(
                    type=item.type,
                    identifier=identifier,
                    caption=caption,
                    config={**(data.get("config") or {}), **ctx.data.get("launched", {})},
                    booking_item=item,
                    **common,
                )
            ]
        return []  # a private cloud is a pool: its setup creates no asset of its own

    def compensate(self, ctx) -> None:
        # Children first: the hierarchy protects parents that still have sub-assets.
        for asset in HostingAsset.objects.filter(created_by_id=ctx.operation.pk).order_by("-id"):
            asset.delete()


class DeleteEvent(Step):
    """The assets exist: the event has done its job (the operation keeps the history)."""

    name = "delete_event"
    title = "Finish"
    weight = 4

    def run(self, ctx) -> Done:
        BookingItemCreatedEvent.objects.filter(pk=ctx.data["event_id"]).delete()
        return Done({})


class _AssetCreationSaga(Saga):
    timeout = None  # each waiting step has its own give-up clock

    def write_status(self, operation, view) -> None:
        event_write_status(operation=operation, view=view)


class WebspaceSaga(_AssetCreationSaga):
    kind = "bookings.webspace"
    steps = [ValidateAssetData(), TargetServer(), CreateAssets(), DeleteEvent()]


class DomainSetupSaga(_AssetCreationSaga):
    kind = "bookings.domain_setup"
    steps = [ValidateAssetData(), VerifyOwnership(), CreateAssets(), DeleteEvent()]


class ManualSetupSaga(_AssetCreationSaga):
    kind = "bookings.manual_setup"
    steps = [ValidateAssetData(), ManualSetup(), CreateAssets(), DeleteEvent()]


class CloudServerSaga(_AssetCreationSaga):
    kind = "bookings.cloud_server"
    steps = [ValidateAssetData(), LaunchServer(), CreateAssets(), DeleteEvent()]
