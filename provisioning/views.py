from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from bookings.selectors import booking_items_for_overview
from images.selectors import reservations_visible_to
from provisioning.applications.selectors import requests_visible_to
from provisioning.orders.selectors import orders_visible_to
from provisioning.saga.runner import status_view
from provisioning.saga.versions import saga_view
from provisioning.selectors import customers_of, operation_steps, operations_visible_to
from provisioning.services import is_hostmaster
from provisioning.timeline import timeline_svg

PAGE_SIZE = 10


def _page(request: HttpRequest, queryset: QuerySet, name: str) -> Page:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get(name))


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The customer's main page: what they booked, built and requested, newest first, each with its
    live status; the lists fetch themselves again every few seconds (live.js)."""
    user = request.user
    context = {
        "customers": customers_of(user),
        "items": _page(request, booking_items_for_overview(user), "items"),
        "reservations": _page(
            request, reservations_visible_to(user).order_by("-created_at", "-id"), "launches"
        ),
        "requests": _page(request, requests_visible_to(user).order_by("-created_at"), "requests"),
        "orders": _page(request, orders_visible_to(user).order_by("-created_at", "-id"), "orders"),
        "query": request.GET.urlencode(),
    }
    template = "_home_lists.html" if request.GET.get("fragment") else "home.html"
    return render(request, template, context)


def _subject_url(operation) -> str:
    """The page of what the operation serves (the status pages of the bookings, images and
    applications apps), or "" when it has none."""
    if operation.subject_type == "bookings.bookingitemcreatedevent" and operation.data.get("booking_item_id"):
        return f"/bookings/items/{operation.data['booking_item_id']}/"
    if operation.subject_type == "images.reservation":
        return f"/reservations/{operation.subject_id}/"
    if operation.subject_type == "applications.applicationrequest":
        return reverse("applications:request", kwargs={"pk": operation.subject_id})
    return ""


@login_required
def operation(request: HttpRequest, pk) -> HttpResponse:
    """An operation's timeline, steps, errors and what it waits for: for the customer of its subject
    and for hostmasters."""
    op = get_object_or_404(operations_visible_to(request.user).prefetch_related("step_runs"), pk=pk)
    try:
        view = status_view(op, saga_view(op))
        steps = operation_steps(op)
    except LookupError:
        view, steps = None, []
    failed = ("retry", "failed", "lost", "compensation_failed")
    context = {
        "op": op,
        "view": view,
        "steps": steps,
        "failures": [run for step in steps for run in step["runs"] if run.outcome in failed],
        "timeline": timeline_svg(op),
        "hostmaster": is_hostmaster(request.user),
        "subject_url": _subject_url(op),
    }
    template = "_operation_live.html" if request.GET.get("fragment") else "operation.html"
    return render(request, template, context)
