"""Pages of application requests: the request form, the request's status page (it updates itself from
a small HTML fragment), the list, and the authorizer's decision page, reached from the notification
email. They call the same services as the API (`application_request_create`,
`application_request_decide`), so the same rules hold: only the named authorizer or a hostmaster
decides, once, before the deadline. Another customer's request answers 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from provisioning.applications import selectors, services
from provisioning.applications.choices import RequestState
from provisioning.applications.forms import DecisionForm, RequestForm
from provisioning.applications.models import ApplicationRequest
from provisioning.selectors import customers_of
from provisioning.services import ServiceError
from provisioning.submit_once import form_key, submit_once

WHAT_TO_DO = {
    RequestState.REJECTED: "Nothing was created. Talk to {who} and submit a new request when it makes sense.",
    RequestState.TIMED_OUT: "Nothing was created. Submit the request again and ask {who} to decide in time.",
    RequestState.FAILED: "What was created was removed again. Correct what the message names and submit "
    "the request again.",
    RequestState.CANCELLED: "What was created was removed again.",
}


def _add_errors(form, exc: ValidationError, aliases: dict[str, str] | None = None) -> None:
    """The service's field errors, next to the form's fields (the rest above the form)."""
    for field, messages in exc.message_dict.items():
        field = (aliases or {}).get(field, field)
        form.add_error(field if field in form.fields else None, messages)


def _status(target: ApplicationRequest) -> dict:
    now = timezone.now()
    undecided = not target.decision and not target.is_terminal
    return {
        "target": target,
        "undecided": undecided,
        "seconds_left": max(0, int((target.decision_deadline - now).total_seconds())),
        "expired": not target.decision
        and (target.state == RequestState.TIMED_OUT or now > target.decision_deadline),
        "what_to_do": WHAT_TO_DO.get(target.state, "").format(who=target.authorizer_username),
    }


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    context = {
        "requests": selectors.requests_visible_to(request.user)[:50],
        "awaiting": selectors.requests_awaiting(request.user)[:50],
    }
    return render(request, "applications/request_list.html", context)


@login_required
def request_new(request: HttpRequest) -> HttpResponse:
    customers = list(customers_of(request.user))
    if not customers:
        return render(request, "no_customer.html", {"what": "Request application resources"}, status=403)
    if request.method == "POST":
        # Requested once per render of the form: a second click gets the first request's page.
        return submit_once(request, lambda: _request_new(request, customers))
    return _request_new(request, customers)


def _request_new(request: HttpRequest, customers: list) -> HttpResponse:
    form = RequestForm(request.POST or None, requester=request.user, customers=customers)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                customer = form.cleaned_data.get("customer") or services.customer_for(request.user)
                created = services.application_request_create(
                    requester=request.user, customer=customer, **form.request_data()
                )
            except ValidationError as exc:
                _add_errors(form, exc, {"requested_resources": "resources"})
            else:
                return redirect("applications:request", pk=created.pk)
    context = {"form": form, "form_key": form_key()}
    return render(request, "applications/request_new.html", context, status=status)


@login_required
def request_detail(request: HttpRequest, pk) -> HttpResponse:
    target = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    context = {**_status(target), "may_decide": services.may_decide(request=target, user=request.user)}
    return render(request, "applications/request_detail.html", context)


@login_required
def request_live(request: HttpRequest, pk) -> HttpResponse:
    """The live part of the status and decision pages alone: their script fetches it every second."""
    target = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    # On the decision page, the countdown disables the decision form when it reaches zero.
    disables = "#decision-form" if request.GET.get("for") == "decision" else ""
    response = render(request, "applications/_request_live.html", {**_status(target), "disables": disables})
    response["Cache-Control"] = "no-store"
    return response


@login_required
def decision(request: HttpRequest, pk) -> HttpResponse:
    target = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    may_decide = services.may_decide(request=target, user=request.user)
    status_context = _status(target)
    open_for_decision = may_decide and status_context["undecided"] and not status_context["expired"]
    form = DecisionForm(request.POST or None, request=target) if open_for_decision else None
    status = 200
    if request.method == "POST":
        if not may_decide:
            status = 403
        elif form is None:
            status = 409
        elif form.is_valid():
            try:
                services.application_request_decide(request=target, user=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
                status = 400
            except ServiceError as exc:
                form.add_error(None, exc.message)
                status = exc.code
            else:
                return redirect(request.path)
        else:
            status = 400
    context = {**status_context, "form": form, "may_decide": may_decide}
    return render(request, "applications/decision.html", context, status=status)
