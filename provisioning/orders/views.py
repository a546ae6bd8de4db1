"""Pages of environment orders for platform teams: the order wizard (paste or upload an `order.yml`,
see every field error where it is, see the dry run's plan, confirm), the order's live status page,
and the environment's page with its services and a delete action. They call the same services as the
API and `process_order` (`order_create`), so the same rules hold. Another customer's order or
environment answers 404."""

from __future__ import annotations

import secrets

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from provisioning.orders import conf, selectors, services
from provisioning.orders.choices import EnvironmentState
from provisioning.orders.forms import OrderForm
from provisioning.orders.spec import OrderInvalid, locate
from provisioning.selectors import customers_of
from provisioning.services import ServiceError

TOKENS = "orders.wizard.tokens"  # session: the wizard's one-time tokens and the order each made


def _annotated(text: str, errors: dict[str, list[str]]) -> list[dict]:
    """The order's lines, each with the errors of the fields it holds (errors of no line first)."""
    lines = [{"number": i + 1, "text": line, "errors": []} for i, line in enumerate(text.splitlines())]
    unplaced = []
    for path, messages in errors.items():
        line = locate(text, path) if path != "order" else None
        for message in messages:
            entry = {"path": path, "message": message}
            if line and line <= len(lines):
                lines[line - 1]["errors"].append(entry)
            else:
                unplaced.append(entry)
    return [{"number": None, "text": "", "errors": unplaced}, *lines] if unplaced else lines


def _customer(request: HttpRequest):
    return customers_of(request.user).first()


@login_required
@require_http_methods(["GET", "POST"])
def order_new(request: HttpRequest) -> HttpResponse:
    customer = _customer(request)
    if customer is None:
        return render(request, "no_customer.html", {"what": "Order an environment"}, status=403)
    form = OrderForm(request.POST or None, request.FILES or None)
    context: dict = {"form": form}
    status = 200
    if request.method == "POST" and "edit" in request.POST:
        form = OrderForm(initial={"text": request.POST.get("text", "")})  # back to the text, unchecked
        context["form"] = form
    elif request.method == "POST" and form.is_valid():
        try:
            text = form.order_text()
        except forms.ValidationError as exc:
            form.add_error("file", exc)
            return render(request, "orders/order_new.html", context, status=400)
        token = request.POST.get("token", "")
        done = request.session.get(TOKENS, {})
        if "confirm" in request.POST and token in done:
            return redirect("orders:order", pk=done[token])  # sent twice: the order it made
        try:
            if "confirm" in request.POST:
                order = services.order_create(text=text, customer=customer, user=request.user)
                request.session[TOKENS] = {**done, token: order.pk}
                return redirect("orders:order", pk=order.pk)
            plan = services.order_create(text=text, customer=customer, user=request.user, dry_run=True)
        except OrderInvalid as exc:
            context.update(errors=exc.errors, lines=_annotated(text, exc.errors), error_count=len(exc.errors))
            status = 400
        except ServiceError as exc:
            context["refused"] = exc.message
            status = exc.code if exc.code in (403, 409) else 400
        else:
            context.update(plan=plan, text=text, token=secrets.token_urlsafe(16))
    return render(request, "orders/order_new.html", context, status=status)


def _order_context(request: HttpRequest, pk: int) -> dict:
    order = get_object_or_404(selectors.orders_visible_to(request.user), pk=pk)
    return {"order": order, "services": list(order.environment.deployments.select_related("host"))}


@login_required
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "orders/order_detail.html", _order_context(request, pk))


@login_required
def order_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the order page alone: its script fetches it every second."""
    response = render(request, "orders/_order_live.html", _order_context(request, pk))
    response["Cache-Control"] = "no-store"
    return response


def _environment_context(request: HttpRequest, key: str) -> dict:
    environment = get_object_or_404(selectors.environments_visible_to(request.user), key=key)
    listen = conf.proxy_listen()
    rows = []
    for d in environment.deployments.select_related("host").order_by("section", "path"):
        domains = environment.domains.get(d.section, [])
        rows.append({"d": d, "addresses": [f"http://{domain}{d.path}" for domain in domains]})
    return {
        "environment": environment,
        "rows": rows,
        "orders": environment.orders.all()[:50],
        "listen": listen,
        "deleted": environment.state == EnvironmentState.DELETED,
        "running": environment.orders.filter(status__in=["pending", "running", "waiting"]).first(),
    }


@login_required
def environment_detail(request: HttpRequest, key: str) -> HttpResponse:
    return render(request, "orders/environment_detail.html", _environment_context(request, key))


@login_required
@require_http_methods(["GET", "POST"])
def environment_delete(request: HttpRequest, key: str) -> HttpResponse:
    """GET asks for confirmation; POST sends the delete order and shows its progress."""
    context = _environment_context(request, key)
    environment = context["environment"]
    if request.method == "POST":
        text = f'action: delete\nenvironment_id: "{environment.key}"\n'
        try:
            order = services.order_create(text=text, customer=environment.customer, user=request.user)
        except (OrderInvalid, ServiceError) as exc:
            context["refused"] = getattr(exc, "message", None) or "; ".join(
                m for msgs in exc.errors.values() for m in msgs
            )
            return render(request, "orders/environment_delete.html", context, status=409)
        return redirect("orders:order", pk=order.pk)
    return render(request, "orders/environment_delete.html", context)
