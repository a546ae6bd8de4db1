"""The build→launch saga: build the image in every region (a chord) → wait until it is ready (a short
look per task; the engine keeps the interval and the build's time limit in the row, so no worker waits)
→ ensure the public key → reserve the launch (a dry run per region, and the client tokens) → launch the
instances in every region (a chord) → fetch their descriptions.

Steps are per region where the work is, so the saga has one kind per number of regions
(`images.build_launch.N`, N up to MAX_REGIONS); the region of a step is `ctx.data["regions"][index]`.
Each step asks the provider before it creates anything and passes idempotency references (the build
reference, the key's fingerprint, the client token), so a step that runs again after a crash never
creates a second image, key or set of instances. Undoing "Reserving the launch" terminates every
instance tagged with the reservation in every region, those still starting included, so a launch
that fails or times out half-way leaves nothing running.
"""

from __future__ import annotations

import hashlib
import logging

from images import conf
from images.manifest import MAX_REGIONS
from images.models import Reservation, ReservationInstance
from provisioning.providers import (
    BuildState,
    InstanceState,
    LaunchRequest,
    Provider,
    ProviderError,
    get_provider,
)
from provisioning.providers.base import TAG_CUSTOMER, TAG_RESERVATION, TAG_TOKEN
from provisioning.saga import (
    Done,
    LookAgain,
    PollPolicy,
    RetryPolicy,
    Saga,
    Step,
    StepFailed,
    StepTimedOut,
)
from provisioning.saga.context import StepContext

log = logging.getLogger("images")

TITLES = {
    "build": "Building the image",
    "wait_ready": "Waiting for the image to be ready",
    "ensure_key": "Ensuring the public key",
    "reserve": "Reserving the launch",
    "launch": "Launching instances",
    "fetch": "Fetching instance descriptions",
}
_PROVIDER_RETRY = RetryPolicy(max_attempts=5, backoff=1.0, multiplier=2.0, max_interval=30.0)


def reservation_of(ctx: StepContext) -> Reservation:
    reservation = (
        Reservation.objects.select_related("build", "account", "pubkey", "customer")
        .filter(pk=ctx.data["reservation_id"])
        .first()
    )
    if reservation is None:
        raise StepFailed("The reservation is gone: nothing to launch.")
    return reservation


def provider_of(reservation: Reservation) -> Provider:
    account = reservation.account.provider_account() if reservation.account else None
    return get_provider(reservation.provider, account, fault=reservation.detail.get("inject_fault", ""))


def _permanent(exc: ProviderError, what: str) -> Exception:
    """A refusal no retry mends ends the saga with a message; anything else is retried."""
    if exc.retryable:
        return exc
    return StepFailed(f"{what} failed: {exc.message}. Correct the request and submit it again.", str(exc))


def clocks() -> dict[str, float]:
    """The clocks a build-and-launch runs by, fixed when it starts and kept in its operation's data,
    so that a change of settings does not change the rhythm of launches already running."""
    return {
        "build_timeout": conf.build_timeout(),
        "launch_timeout": conf.launch_timeout(),
        "poll_interval": conf.poll_interval(),
    }


def _clock(ctx: StepContext, name: str) -> float:
    return float(ctx.data.get("clocks", {}).get(name) or clocks()[name])


class RegionStep(Step):
    def __init__(self, index: int) -> None:
        self.index = index

    def region(self, ctx: StepContext) -> str:
        return ctx.data["regions"][self.index]


class BuildImage(RegionStep):
    weight = 1
    title = TITLES["build"]
    retry = _PROVIDER_RETRY

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.name = f"build_{index}"

    def run(self, ctx: StepContext) -> Done:
        region = self.region(ctx)
        if f"image:{region}" in ctx.data:
            return Done()
        reservation = reservation_of(ctx)
        build = reservation.build
        try:
            image_id = provider_of(reservation).start_build(
                region=region, build_ref=build.build_ref, name=build.name, manifest=build.manifest
            )
        except ProviderError as exc:
            raise _permanent(exc, f"Building the image in {region}") from exc
        return Done({f"image:{region}": image_id})

    def compensate(self, ctx: StepContext) -> None:
        region = self.region(ctx)
        image_id = ctx.data.get(f"image:{region}")
        if not image_id or ctx.data.get(f"deleted:{region}"):
            return
        reservation = reservation_of(ctx)
        # A one-off image goes with its launch; an unfinished build is of no use to anybody. A ready
        # image that was not one-off stays: launching it again is cheaper than building it again.
        if reservation.build.one_off or not ctx.data.get("image_ready"):
            provider_of(reservation).delete_image(region=region, image_id=image_id)
            ctx.save(**{f"deleted:{region}": True})


class WaitUntilReady(Step):
    """One look at every region's build per run; between looks no worker waits (LookAgain), and the
    engine keeps the rhythm and the build's time limit in the operation's row."""

    name = "wait_ready"
    weight = 2
    title = TITLES["wait_ready"]
    retry = _PROVIDER_RETRY
    # Not `reads_only`: on aws a look moves the builder on (stop it, image it, terminate it), so two
    # deliveries of one look must not both act: each look is claimed.

    def poll_policy(self, ctx: StepContext) -> PollPolicy:
        return PollPolicy(interval=_clock(ctx, "poll_interval"), max_interval=30.0, lateness=0.1)

    def poll_deadline(self, ctx: StepContext) -> float:
        # The build's time limit counts from the build's start: the operation's, its first step.
        return ctx.operation.created_at.timestamp() + _clock(ctx, "build_timeout")

    def run(self, ctx: StepContext) -> Done | LookAgain:
        reservation = reservation_of(ctx)
        provider = provider_of(reservation)
        waiting, ready = [], {}
        for region in ctx.data["regions"]:
            try:
                status = provider.describe_build(region=region, image_id=ctx.data[f"image:{region}"])
            except ProviderError as exc:
                raise _permanent(exc, f"Looking at the build in {region}") from exc
            if status.state == BuildState.FAILED:
                raise StepFailed(
                    f"The image build failed in {region}: {status.message}. "
                    "Check the manifest (packages, customizations) and submit it again."
                )
            if status.state == BuildState.READY:
                # A provider that builds on a builder instance names the build by it until the image
                # exists: what is launched is the image it answers with once ready.
                ready[f"image:{region}"] = status.image_id or ctx.data[f"image:{region}"]
            else:
                waiting.append(f"{region}: {status.message or status.state}")
        if not waiting:
            return Done({"image_ready": True, **ready})
        return LookAgain(reason=f"the image is still building ({'; '.join(waiting)})")

    def on_poll_timeout(self, ctx: StepContext, reason: str) -> Done:
        raise StepTimedOut(
            f"The image was not ready within {_clock(ctx, 'build_timeout'):g} s ({reason}); the build "
            "was stopped and nothing was launched. Submit it again later."
        )


class EnsurePublicKey(Step):
    name = "ensure_key"
    weight = 3
    title = TITLES["ensure_key"]
    retry = _PROVIDER_RETRY

    def run(self, ctx: StepContext) -> Done:
        reservation = reservation_of(ctx)
        if reservation.pubkey is None:
            return Done()
        provider = provider_of(reservation)
        key = reservation.pubkey
        name = "provisioning-" + hashlib.sha256(key.fingerprint.encode()).hexdigest()[:16]
        for region in ctx.data["regions"]:
            if f"key:{region}" in ctx.data:
                continue
            try:
                pair = provider.ensure_public_key(region=region, name=name, public_key=key.body)
            except ProviderError as exc:
                raise _permanent(exc, f"Uploading the public key to {region}") from exc
            ctx.save(**{f"key:{region}": pair.name})  # a retry after a later region failed skips it
        return Done({k: v for k, v in ctx.data.items() if k.startswith("key:")})


def launch_request(ctx: StepContext, reservation: Reservation, region: str) -> LaunchRequest:
    # The token names the operation too: a reservation started anew (a retry after failure) launches
    # a new set, while any re-run of this operation's steps finds the set it launched before.
    return LaunchRequest(
        region=region,
        image_id=ctx.data[f"image:{region}"],
        count=int(reservation.regions[region]),
        instance_type=reservation.instance_type,
        key_name=ctx.data.get(f"key:{region}", ""),
        client_token=f"{ctx.operation_id}-{region}",
        tags={TAG_RESERVATION: str(reservation.uid), TAG_CUSTOMER: str(reservation.customer_id)},
    )


def terminate_reservation(provider: Provider, reservation: Reservation, regions: list[str]) -> int:
    """Terminate every instance tagged with the reservation in `regions` (those still starting
    included) and wait until they are gone; return how many there were."""
    count = 0
    for region in regions:
        found = provider.find_instances(region=region, tags={TAG_RESERVATION: str(reservation.uid)})
        ids = sorted(
            {i.id for i in found}
            | set(
                ReservationInstance.objects.filter(reservation=reservation, region=region)
                .exclude(state=InstanceState.TERMINATED)
                .values_list("instance_id", flat=True)
            )
        )
        if not ids:
            continue
        provider.terminate_instances(region=region, instance_ids=ids)
        if not provider.wait_terminated(
            region=region, tags={TAG_RESERVATION: str(reservation.uid)}, timeout=60
        ):
            raise ProviderError(f"instances in {region} did not terminate within 60 s: {', '.join(ids)}")
        ReservationInstance.objects.filter(reservation=reservation, instance_id__in=ids).update(
            state=InstanceState.TERMINATED
        )
        count += len(ids)
    return count


class ReserveLaunch(Step):
    name = "reserve"
    weight = 4
    title = TITLES["reserve"]
    retry = _PROVIDER_RETRY

    def run(self, ctx: StepContext) -> Done:
        reservation = reservation_of(ctx)
        provider = provider_of(reservation)
        for region in ctx.data["regions"]:
            try:
                provider.check_launch(launch_request(ctx, reservation, region))
            except ProviderError as exc:
                raise _permanent(exc, f"Checking the launch in {region}") from exc
        return Done()

    def compensate(self, ctx: StepContext) -> None:
        reservation = reservation_of(ctx)
        count = terminate_reservation(provider_of(reservation), reservation, ctx.data["regions"])
        log.info("reservation %s: terminated %s instances while undoing the launch", reservation.pk, count)


class LaunchInstances(RegionStep):
    weight = 5
    title = TITLES["launch"]
    retry = _PROVIDER_RETRY

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.name = f"launch_{index}"

    # The first look when a booting instance may be up (the local provider boots in 0.5 s).
    poll = PollPolicy(interval=0.5, multiplier=2.0, max_interval=5.0)

    def poll_deadline(self, ctx: StepContext) -> float:
        return ctx.polling_since + _clock(ctx, "launch_timeout")

    def run(self, ctx: StepContext) -> Done | LookAgain:
        region = self.region(ctx)
        reservation = reservation_of(ctx)
        provider = provider_of(reservation)
        request = launch_request(ctx, reservation, region)
        try:
            launched = provider.launch_instances(request)
        except ProviderError as exc:
            raise _permanent(exc, f"Launching instances in {region}") from exc
        for instance in launched:
            ReservationInstance.objects.update_or_create(
                reservation=reservation,
                instance_id=instance.id,
                defaults={"region": region, "state": instance.state, "detail": instance.detail()},
            )
        found = provider.find_instances(region=region, tags={TAG_TOKEN: request.client_token})
        running = [i for i in found if i.state == InstanceState.RUNNING]
        if len(running) >= request.count:
            return Done({f"instances:{region}": sorted(i.id for i in running)})
        # Booting: look again soon (the launch call above finds the same instances by their token).
        return LookAgain(reason=f"{len(running)} of {request.count} instances running")

    def on_poll_timeout(self, ctx: StepContext, reason: str) -> Done:
        raise StepTimedOut(
            f"The instances in {self.region(ctx)} were not running within "
            f"{_clock(ctx, 'launch_timeout'):g} s ({reason}); they were terminated. Submit the launch again."
        )

    def compensate(self, ctx: StepContext) -> None:
        region = self.region(ctx)
        reservation = reservation_of(ctx)
        terminate_reservation(provider_of(reservation), reservation, [region])


class FetchDescriptions(Step):
    name = "fetch"
    weight = 6
    title = TITLES["fetch"]
    retry = RetryPolicy(max_attempts=4, backoff=1.0, multiplier=2.0, max_interval=10.0)

    def run(self, ctx: StepContext) -> Done:
        reservation = reservation_of(ctx)
        provider = provider_of(reservation)
        count = 0
        for region in ctx.data["regions"]:
            ids = ctx.data.get(f"instances:{region}", [])
            try:
                described = provider.describe_instances(region=region, instance_ids=ids)
            except ProviderError as exc:
                raise _permanent(exc, f"Describing the instances in {region}") from exc
            for instance in described:
                ReservationInstance.objects.update_or_create(
                    reservation=reservation,
                    instance_id=instance.id,
                    defaults={"region": region, "state": instance.state, "detail": instance.detail()},
                )
            count += len(described)
        return Done({"described": count})


class BuildLaunchSaga(Saga):
    """The base of `images.build_launch.N`; its status goes onto the reservation (and, through the
    reservation's status listener, onto whatever another app launched it for)."""

    def write_status(self, operation, view) -> None:
        from images.services import reservation_write_status

        reservation_write_status(operation=operation, view=view, saga=self)


def saga_kind(regions: int) -> str:
    return f"images.build_launch.{regions}"


def _define(regions: int) -> type[BuildLaunchSaga]:
    steps: list[Step] = [BuildImage(i) for i in range(regions)]
    steps += [WaitUntilReady(), EnsurePublicKey(), ReserveLaunch()]
    steps += [LaunchInstances(i) for i in range(regions)]
    steps.append(FetchDescriptions())
    return type(
        f"BuildLaunch{regions}",
        (BuildLaunchSaga,),
        {
            "kind": saga_kind(regions),
            "steps": steps,
        },
    )


SAGAS = {n: _define(n) for n in range(1, MAX_REGIONS + 1)}
