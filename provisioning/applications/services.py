"""Business actions of application requests: teams, submitting a request, the pre-flight checks, the
authorizer's notification and decision, cancelling, and the status hook of the saga. API views, the
decision page, admin actions and the saga's steps call these; none holds logic of its own."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Case, Value, When
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from provisioning import services as core
from provisioning.applications import conf
from provisioning.applications.choices import Decision, Provider, RequestState
from provisioning.applications.models import ApplicationRequest, Team
from provisioning.applications.sagas import DECISION_SIGNAL, KIND, RESOURCE_KINDS, resources_of
from provisioning.choices import OperationState, Role
from provisioning.models import Customer, Membership, Operation
from provisioning.providers.buckets import FAULTS, bucket_name_errors, get_bucket_adapter
from provisioning.saga import runner
from provisioning.saga.definition import StatusView
from provisioning.selectors import customer_ids_of
from provisioning.services import Conflict, ServiceError, is_hostmaster

# --- Teams ---------------------------------------------------------------------------------------


@transaction.atomic
def team_create(*, customer: Customer, name: str, members=(), authorizers=()) -> Team:
    """A team of `customer`; members and authorizers must be users of that customer."""
    team = Team(customer=customer, name=name)
    team.full_clean()
    outsiders = [
        u.username
        for u in [*members, *authorizers]
        if not Membership.objects.filter(user=u, customer=customer).exists()
    ]
    if outsiders:
        raise ValidationError({"members": [f"not users of {customer}: {', '.join(sorted(set(outsiders)))}"]})
    team.save()
    team.members.set(members)
    team.authorizers.set(authorizers)
    return team


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


# --- Submitting ----------------------------------------------------------------------------------


def _time_limit(seconds: int | None) -> int:
    if seconds is None:
        return conf.decision_timeout()
    low, high = conf.decision_timeout_bounds()
    if not low <= seconds <= high:
        raise ValidationError({"time_limit_seconds": [f"must be between {low} and {high} seconds."]})
    return seconds


def _requested_resources(resources: dict | None) -> dict:
    resources = {"bucket": {}} if resources is None else resources
    errors = []
    if not isinstance(resources, dict) or not resources:
        raise ValidationError(
            {"requested_resources": ['ask for at least one resource, e.g. {"bucket": {}}.']}
        )
    for kind, spec in resources.items():
        if kind not in RESOURCE_KINDS:
            errors.append(f"'{kind}' is no resource kind: one of {', '.join(RESOURCE_KINDS)}.")
        elif not isinstance(spec, dict):
            errors.append(f"{kind}: must be an object.")
        elif kind == "bucket":
            unknown = set(spec) - {"index_html"}
            if unknown:
                errors.append(f"bucket: unknown field(s) {', '.join(sorted(unknown))}; only index_html.")
            html = spec.get("index_html", "")
            if not isinstance(html, str) or len(html) > 100_000:
                errors.append("bucket.index_html: must be text of at most 100,000 characters.")
    if errors:
        raise ValidationError({"requested_resources": errors})
    return resources


@transaction.atomic
def application_request_create(
    *,
    requester,
    customer: Customer,
    team: str,
    application: str,
    authorizer: str,
    requested_resources: dict | None = None,
    provider: str = Provider.AWS,
    time_limit_seconds: int | None = None,
    inject_fault: str = "",
) -> ApplicationRequest:
    """Store the request and start its saga (enqueued on commit). Only the shape is checked here; the
    saga's pre-flight checks decide whether team, requester, authorizer and names are fit."""
    if inject_fault:
        if not conf.fault_injection_enabled():
            raise ValidationError(
                {"inject_fault": ["fault injection is off on this service (APPLICATIONS_FAULT_INJECTION)."]}
            )
        if inject_fault not in FAULTS:
            raise ValidationError({"inject_fault": [f"must be one of {', '.join(FAULTS)}."]})
    limit = _time_limit(time_limit_seconds)
    resources = _requested_resources(requested_resources)
    now = timezone.now()
    request = ApplicationRequest.objects.create(
        customer=customer,
        team=Team.objects.filter(customer=customer, name=team).first(),
        team_name=team,
        application=application,
        requested_resources=resources,
        provider=provider,
        requester=requester,
        authorizer=get_user_model()
        .objects.filter(username=authorizer, memberships__customer=customer)
        .first(),
        authorizer_username=authorizer,
        time_limit_seconds=limit,
        decision_deadline=now + timedelta(seconds=limit),
        inject_fault=inject_fault,
    )
    request.operation = runner.start(
        kind=KIND, subject=request, customer=customer, data={}, queue=request.provider
    )
    ApplicationRequest.objects.filter(pk=request.pk).update(operation=request.operation)
    request.refresh_from_db()
    return request


# --- Pre-flight checks ---------------------------------------------------------------------------


def application_request_preflight(*, request: ApplicationRequest) -> list[tuple[str, str]]:
    """Every check that fails, as (check, why). Run by the saga, so it sees teams as they are now."""
    failures: list[tuple[str, str]] = []
    team = request.team
    if team is None:
        failures.append(("team exists", f"there is no team '{request.team_name}' at {request.customer}"))
    requester = request.requester
    if requester is None or not requester.is_active:
        failures.append(("requester", "the requesting user no longer exists or is inactive"))
    elif team is not None and not team.members.filter(pk=requester.pk).exists():
        failures.append(
            ("requester belongs to the team", f"{requester.username} is not a member of team '{team.name}'")
        )
    authorizer = request.authorizer
    if authorizer is None or not authorizer.is_active:
        failures.append(
            (
                "authorizer exists",
                f"there is no active user '{request.authorizer_username}' at {request.customer}",
            )
        )
    elif requester is not None and authorizer.pk == requester.pk:
        failures.append(("authorizer may authorize", "a requester cannot authorize their own request"))
    elif team is not None:
        owner = Membership.objects.filter(
            user=authorizer, customer=request.customer, role=Role.OWNER
        ).exists()
        if not owner and not team.authorizers.filter(pk=authorizer.pk).exists():
            failures.append(
                (
                    "authorizer may authorize",
                    f"{authorizer.username} is neither an authorizer of team '{team.name}' nor an owner of "
                    f"{request.customer}",
                )
            )
    if "bucket" in request.requested_resources:
        for why in bucket_name_errors(request.bucket_name):
            failures.append(("names are valid for every provider", f"bucket name {why}"))
    return failures


# --- Notification --------------------------------------------------------------------------------


def decision_path(request: ApplicationRequest) -> str:
    try:
        return reverse("applications:decision", args=[request.pk])
    except NoReverseMatch:  # the decision page is not mounted: its documented place
        return f"/applications/requests/{request.pk}/decision/"


def application_request_notify(*, request: ApplicationRequest) -> str:
    """Email the authorizer a link to the decision page. Returns what to tell people about it."""
    authorizer = request.authorizer
    if authorizer is None or not authorizer.email:
        return f"{request.authorizer_username} has no email address: tell them yourself."
    context = {
        "request": request,
        "link": settings.SITE_URL.rstrip("/") + decision_path(request),
        "api": f"{settings.SITE_URL.rstrip('/')}/api/application-requests/{request.pk}/decision/",
        "deadline": request.decision_deadline,
    }
    subject = f"Please decide: resources for {request.application} (team {request.team_name})"
    body = render_to_string("applications/authorizer_email.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [authorizer.email])
    now = timezone.now()
    ApplicationRequest.objects.filter(pk=request.pk).update(notified_at=now)
    return f"{request.authorizer_username} was notified by email at {now:%H:%M:%S} UTC."


def application_index_page(*, request: ApplicationRequest) -> str:
    custom = (request.requested_resources.get("bucket") or {}).get("index_html")
    if custom:
        return custom
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(request.application)}</title>"
        f"</head><body><h1>{escape(request.application)}</h1><p>Team {escape(request.team_name)}, "
        f"request {request.pk}.</p></body></html>\n"
    )


# --- Deciding ------------------------------------------------------------------------------------


def may_decide(*, request: ApplicationRequest, user) -> bool:
    return is_hostmaster(user) or (request.authorizer_id is not None and request.authorizer_id == user.pk)


def _decision_errors(request: ApplicationRequest, approved: bool, region: str, profile: str) -> dict:
    if not approved:
        return {}
    errors: dict[str, list[str]] = {}
    regions = get_bucket_adapter(request.provider).regions()
    if not region:
        errors["region"] = ["choose the region to provision in."]
    elif region not in regions:
        shown = ", ".join(regions[:8]) + (", ..." if len(regions) > 8 else "")
        errors["region"] = [f"{request.provider} has no region '{region}': one of {shown}."]
    profiles = conf.profiles()
    if not profile:
        errors["profile"] = ["choose the profile to provision with."]
    elif profile not in profiles:
        errors["profile"] = [f"'{profile}' is no profile of this service: one of {', '.join(profiles)}."]
    return errors


@transaction.atomic
def application_request_decide(
    *,
    request: ApplicationRequest,
    user,
    approved: bool,
    region: str = "",
    profile: str = "",
    comment: str = "",
) -> ApplicationRequest:
    """Record the authorizer's decision and send it to the saga, in one transaction. The saga finds it
    whether it waits already or not yet (signals are rows)."""
    locked = ApplicationRequest.objects.select_for_update().get(pk=request.pk)
    if not may_decide(request=locked, user=user):
        raise ServiceError(
            f"Only {locked.authorizer_username} (the named authorizer) or a hostmaster may decide on this "
            "request.",
            code=403,
        )
    if locked.decision:
        who = locked.decided_by.username if locked.decided_by else "somebody"
        raise Conflict(
            f"The request was already {locked.decision} by {who} at {locked.decided_at:%Y-%m-%d %H:%M:%S} UTC; "
            "a decision cannot be changed."
        )
    now = timezone.now()
    if locked.is_terminal:
        raise Conflict(
            f"The request has already ended ({locked.get_state_display().lower()}); it takes no decision."
        )
    if now > locked.decision_deadline:
        raise Conflict(
            f"The time limit for a decision passed at {locked.decision_deadline:%Y-%m-%d %H:%M:%S} UTC; "
            "the request timed out. Ask the team to submit it again."
        )
    errors = _decision_errors(locked, approved, region, profile)
    if errors:
        raise ValidationError(errors)
    locked.decision = Decision.APPROVED if approved else Decision.REJECTED
    locked.decided_by = user
    locked.decided_at = now
    locked.region = region if approved else ""
    locked.profile = profile if approved else ""
    locked.comment = comment
    locked.save(
        update_fields=["decision", "decided_by", "decided_at", "region", "profile", "comment", "updated_at"]
    )
    payload = {
        "approved": approved,
        "region": locked.region,
        "profile": locked.profile,
        "comment": comment,
        "decided_by": user.username,
    }
    core.operation_signal(operation=locked.operation, name=DECISION_SIGNAL, payload=payload, user=user)
    locked.refresh_from_db()
    return locked


# --- Cancelling ----------------------------------------------------------------------------------


def application_request_cancel(*, request: ApplicationRequest, user, reason: str = "") -> ApplicationRequest:
    """Cancel: nothing more is created, and what was created is removed."""
    if request.operation is None:
        raise ServiceError("The request has no operation to cancel.", code=409)
    core.operation_cancel(operation=request.operation, user=user, reason=reason)
    return ApplicationRequest.objects.get(pk=request.pk)


# --- The saga's status hook ----------------------------------------------------------------------

_POSITIONS = {0: RequestState.CHECKING, 1: RequestState.AWAITING_DECISION}
_FINAL = {
    OperationState.SUCCEEDED: Value(RequestState.READY),
    OperationState.FAILED: Value(RequestState.FAILED),
    OperationState.TIMED_OUT: Value(RequestState.TIMED_OUT),
    # A rejection ends the operation cancelled (nothing went wrong); the request says rejected.
    OperationState.CANCELLED: Case(
        When(decision=Decision.REJECTED, then=Value(RequestState.REJECTED)),
        default=Value(RequestState.CANCELLED),
    ),
}


def application_request_write_status(*, operation: Operation, view: StatusView) -> None:
    """Write the operation's status onto its request; runs inside the operation's transaction."""
    if operation.state in _FINAL:
        state = _FINAL[operation.state]
    elif operation.state == OperationState.COMPENSATING:
        state = Value(RequestState.CLEANING_UP)
    else:
        state = Value(_POSITIONS.get(operation.position, RequestState.PROVISIONING))
    ApplicationRequest.objects.filter(pk=operation.subject_id).update(
        state=state,
        status=view.message[:500],
        instructions=view.instructions,
        resources=resources_of(operation.data),
        error=view.error,
        finished_at=operation.finished_at,
        updated_at=timezone.now(),
    )
