"""The application-request saga: pre-flight checks → the authorizer's decision → the requested resources
→ a final look at them.

Resources are kinds (`RESOURCE_KINDS`): each brings its own steps, with weights between 10 and 99, and
says how its persisted data shows as resources with addresses. A step of a kind the request did not
ask for finishes at once. To add a kind (a database, a queue), write its steps and add it there.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from provisioning.applications.choices import Decision
from provisioning.choices import OperationState
from provisioning.providers.buckets import BucketAdapter, BucketError, get_bucket_adapter
from provisioning.saga import Done, RetryPolicy, Saga, Step, StepFailed, WaitForSignal
from provisioning.saga.steps import StepTimedOut

log = logging.getLogger("provisioning.applications")

KIND = "applications.provision"
DECISION_SIGNAL = "decision"


class Rejected(StepFailed):
    """The authorizer said no: nothing is created and the request ends rejected (the operation ends
    cancelled: nothing went wrong)."""

    end_state = OperationState.CANCELLED


def _request(ctx):
    request = ctx.subject
    if request is None:
        raise StepFailed("The application request is gone (deleted while it was being processed).")
    return request


class Preflight(Step):
    name = "preflight"
    title = "Pre-flight checks"
    weight = 1
    retry = RetryPolicy(max_attempts=3, backoff=0.5)

    def run(self, ctx) -> Done:
        from provisioning.applications.services import application_request_preflight

        failures = application_request_preflight(request=_request(ctx))
        if failures:
            text = "; ".join(f"{check}: {why}" for check, why in failures)
            raise StepFailed(
                f"Pre-flight checks failed — {text}. Nothing was created; correct this and submit again.",
                detail="\n".join(f"{check}: {why}" for check, why in failures),
            )
        return Done({"preflight": "passed"})


class AwaitDecision(Step):
    name = "decision"
    title = "Waiting for the authorizer's decision"
    weight = 2
    retry = RetryPolicy(max_attempts=4, backoff=1.0)

    def run(self, ctx) -> Done | WaitForSignal:
        from provisioning.applications.services import application_request_notify

        request = _request(ctx)
        # A decision stored before we got here (even before the checks ended) is a row: it is found.
        payload = self._decision(ctx)
        if payload is not None:
            return self._decided(payload)
        if not ctx.data.get("notified"):
            # At least once: a crash between the mail and the save sends it again, never not at all.
            try:
                note = application_request_notify(request=request)
            except Exception as exc:
                if ctx.attempt < self.retry.max_attempts:
                    raise
                note = f"The notification could not be sent ({type(exc).__name__}: {exc})."
            ctx.save(notified=True, notification=note)
        who = request.authorizer_username
        until = f"{request.decision_deadline:%Y-%m-%d %H:%M:%S} UTC"
        return WaitForSignal(
            DECISION_SIGNAL,
            request.decision_deadline,
            instructions=(
                f"{who} must approve (choosing a region and a profile) or reject this request before "
                f"{until}, on the decision page or with POST /api/application-requests/{request.pk}/decision/. "
                f"{ctx.data.get('notification', '')}"
            ).strip(),
            message=f"waiting for {who}'s decision until {until}",
        )

    def on_wait_timeout(self, ctx) -> Done:
        # The decision service refuses decisions after the deadline under the request's row lock, so a
        # signal stored here came in time, even if the sweeper saw the deadline first.
        payload = self._decision(ctx)
        if payload is not None:
            return self._decided(payload)
        request = _request(ctx)
        raise StepTimedOut(
            f"Timed out: {request.authorizer_username} did not decide within the time limit of "
            f"{request.time_limit_seconds} s (until {request.decision_deadline:%Y-%m-%d %H:%M:%S} UTC). "
            "Nothing was created; submit the request again."
        )

    def _decision(self, ctx) -> dict | None:
        """The decision, if one was made. A signal only wakes the step: what counts is the request's
        row, written by `application_request_decide` (which checks who may decide) in the transaction
        that stores the signal. A "decision" signal sent any other way (the generic signals endpoint,
        by any user of the customer) decides nothing."""
        while ctx.signal(DECISION_SIGNAL) is not None:
            request = _request(ctx)
            request.refresh_from_db()  # loaded before the signal was read: it may be older than it
            if request.decision:
                return {
                    "approved": request.decision == Decision.APPROVED,
                    "region": request.region,
                    "profile": request.profile,
                    "comment": request.comment,
                    "decided_by": request.decided_by.username if request.decided_by else "a hostmaster",
                }
        return None

    def _decided(self, payload: dict) -> Done:
        who = payload.get("decided_by", "the authorizer")
        if not payload.get("approved"):
            comment = payload.get("comment", "")
            raise Rejected(f"Rejected by {who}" + (f": {comment}" if comment else "."))
        return Done({"region": payload["region"], "profile": payload["profile"], "approved_by": who})


# --- Resource kinds ------------------------------------------------------------------------------


class ResourceStep(Step):
    """A step that creates something at the provider. A step that fails for good undoes its own
    partial work before it fails (the engine compensates only finished steps)."""

    kind: ClassVar[str] = ""
    retry = RetryPolicy(max_attempts=4, backoff=1.0, multiplier=2.0, max_interval=10.0)

    def wanted(self, ctx) -> bool:
        return self.kind in (_request(ctx).requested_resources or {})

    def adapter(self, ctx) -> BucketAdapter:
        request = _request(ctx)
        return get_bucket_adapter(request.provider, profile=ctx.data["profile"], fault=request.inject_fault)

    def run(self, ctx) -> Done:
        if not self.wanted(ctx):
            return Done({})
        try:
            return self.provision(ctx)
        except BucketError as exc:
            final = not exc.retryable or ctx.attempt >= self.retry.max_attempts
            if final:
                self._undo_partial(ctx)
                raise StepFailed(
                    f"{self.title} failed: {exc.message}. What was created was removed; "
                    "correct the cause and submit again.",
                    detail=repr(exc),
                ) from exc
            raise
        except Exception:
            if ctx.attempt >= self.retry.max_attempts:
                self._undo_partial(ctx)
            raise

    def _undo_partial(self, ctx) -> None:
        try:
            self.undo(ctx)
        except Exception:  # the saga's failure stays the message; the leftover is in the log
            log.exception("operation %s: %s could not undo its partial work", ctx.operation_id, self.name)

    def provision(self, ctx) -> Done:
        raise NotImplementedError

    def undo(self, ctx) -> None:
        """Remove what `provision` created, partly or fully. Idempotent."""

    def compensate(self, ctx) -> None:
        if self.wanted(ctx):
            self.undo(ctx)

    @staticmethod
    def describe(data: dict[str, Any]) -> list[dict[str, Any]]:
        """The resources this kind's persisted data shows (name, provider, region, address, state)."""
        return []


class CreateBucket(ResourceStep):
    kind = "bucket"
    name = "bucket_create"
    title = "Creating the bucket"
    weight = 10

    def provision(self, ctx) -> Done:
        request = _request(ctx)
        region = ctx.data["region"]
        bucket = {"name": request.bucket_name, "provider": request.provider, "region": region}
        # Persisted before the create call: whatever happens next, compensation knows the name.
        ctx.save(bucket={**bucket, "state": "creating"})
        adapter = self.adapter(ctx)
        tags = {
            "provisioning:application-request": str(request.pk),
            "provisioning:application": request.application,
            "provisioning:team": request.team_name,
            "provisioning:profile": ctx.data["profile"],
        }
        adapter.create_bucket(region=region, name=bucket["name"], tags=tags)
        for _ in range(60):  # S3 is eventually consistent: wait until the bucket answers
            ctx.heartbeat()
            info = adapter.describe_bucket(region=region, name=bucket["name"])
            if info is not None:
                return Done({"bucket": {**bucket, "state": "created", "address": info.address}})
            time.sleep(0.5)
        raise BucketError(f"bucket {bucket['name']} was created but does not answer")

    def undo(self, ctx) -> None:
        bucket = ctx.data.get("bucket")
        if not bucket:
            return  # the create call was never made
        request = _request(ctx)
        adapter = get_bucket_adapter(request.provider, profile=ctx.data.get("profile", ""))
        adapter.delete_bucket(region=bucket["region"], name=bucket["name"])
        ctx.save(bucket={**bucket, "state": "removed"})

    @staticmethod
    def describe(data: dict[str, Any]) -> list[dict[str, Any]]:
        bucket = data.get("bucket")
        return [{"kind": "bucket", **bucket}] if bucket else []


class PublishIndex(ResourceStep):
    kind = "bucket"
    name = "bucket_index"
    title = "Publishing the index page"
    weight = 11

    def provision(self, ctx) -> Done:
        from provisioning.applications.services import application_index_page

        request = _request(ctx)
        bucket = ctx.data["bucket"]
        html = application_index_page(request=request)
        ctx.heartbeat()
        address = self.adapter(ctx).put_index(region=bucket["region"], name=bucket["name"], html=html)
        return Done({"bucket": {**bucket, "state": "created", "address": address, "index": True}})

    # Its undo is the bucket's: deleting the bucket removes the page with it.


class VerifyResources(Step):
    name = "verify"
    title = "Checking the resources"
    weight = 100
    retry = RetryPolicy(max_attempts=4, backoff=0.5, multiplier=2.0, max_interval=5.0)

    def run(self, ctx) -> Done:
        request = _request(ctx)
        data: dict[str, Any] = {}
        if "bucket" in (request.requested_resources or {}):
            bucket = ctx.data["bucket"]
            adapter = get_bucket_adapter(
                request.provider, profile=ctx.data["profile"], fault=request.inject_fault
            )
            ctx.heartbeat()
            try:
                info = adapter.describe_bucket(region=bucket["region"], name=bucket["name"])
            except BucketError as exc:
                if exc.retryable and ctx.attempt < self.retry.max_attempts:
                    raise
                raise StepFailed(
                    f"{self.title} failed: {exc.message}. What was created was removed; "
                    "correct the cause and submit again.",
                    detail=repr(exc),
                ) from exc
            if info is None or not info.has_index:
                raise StepFailed(
                    f"The bucket {bucket['name']} or its index page is missing at {request.provider}."
                )
            data["bucket"] = {**bucket, "state": "ready", "address": info.address, "region": info.region}
        return Done(data)


RESOURCE_KINDS: dict[str, list[type[ResourceStep]]] = {"bucket": [CreateBucket, PublishIndex]}


def resources_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource the operation's data knows of, with its address and state."""
    shown: list[dict[str, Any]] = []
    for steps in RESOURCE_KINDS.values():
        shown += steps[0].describe(data)
    return shown


class ApplicationProvisionSaga(Saga):
    kind = KIND
    steps = [
        Preflight(),
        AwaitDecision(),
        *[step() for steps in RESOURCE_KINDS.values() for step in steps],
        VerifyResources(),
    ]

    def write_status(self, operation, view) -> None:
        from provisioning.applications.services import application_request_write_status

        application_request_write_status(operation=operation, view=view)
