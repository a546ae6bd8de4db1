"""Pages of the bookings app: the "book an item" wizard and a booking item's status page.

The wizard keeps what it collected in the session until the last step calls `booking_item_create`;
each step checks its part with `booking_item_errors`, so every problem shows next to its field.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from bookings import selectors, services
from bookings.choices import BookingItemType, SignalName
from bookings.forms import AssetForm, ResourcesForm, TypeForm, add_errors, field_name
from bookings.models import BookingItem, Project
from provisioning.ratelimit import rate_limit_consume, refused
from provisioning.services import ServiceError, operation_signal
from provisioning.submit_once import form_key, submit_once

SESSION_KEY = "booking_wizard"
STEPS = [
    ("type", "What to book"),
    ("resources", "Resources"),
    ("asset", "Hosting asset"),
    ("review", "Review and book"),
]
_STEP_NAMES = [name for name, _title in STEPS]
_TYPE_FIELDS = {"type": "type", "caption": "caption", "project": "project", "parent_item": "parent_item"}


def _posted(request: HttpRequest):
    """The form data of a POST (an empty one too: a form of unticked boxes), None otherwise."""
    return request.POST if request.method == "POST" else None


def _state(request: HttpRequest) -> dict:
    return request.session.get(SESSION_KEY) or {}


def _save(request: HttpRequest, state: dict) -> None:
    request.session[SESSION_KEY] = state


def _first_missing_step(state: dict) -> str:
    if not state.get("type"):
        return "type"
    if "resources" not in state:
        return "resources"
    if "hosting_asset" not in state:
        return "asset"
    return "review"


def _project(request: HttpRequest, state: dict) -> Project:
    project = selectors.projects_visible_to(request.user).filter(pk=state.get("project")).first()
    if project is None:
        raise Http404("The project of this booking is gone.")
    return project


def _parent(request: HttpRequest, state: dict) -> BookingItem | None:
    if not state.get("parent_item"):
        return None
    return selectors.booking_items_visible_to(request.user).filter(pk=state["parent_item"]).first()


def _errors(request: HttpRequest, state: dict, **override) -> dict[str, list[str]]:
    args = {
        "type": state["type"],
        "caption": state["caption"],
        "resources": state.get("resources") or {},
        "parent_item": _parent(request, state),
        "hosting_asset": state.get("hosting_asset"),
    }
    args.update(override)
    return services.booking_item_errors(user=request.user, project=_project(request, state), **args)


@login_required
def wizard_start(request: HttpRequest) -> HttpResponse:
    """Start a new booking: forget an unfinished one."""
    request.session.pop(SESSION_KEY, None)
    return redirect("bookings:wizard", step="type")


@login_required
def wizard(request: HttpRequest, step: str) -> HttpResponse:
    if step not in _STEP_NAMES:
        raise Http404("No such step.")
    if step == "review" and request.method == "POST":
        # Booked once per render of the page: a second "Book" gets the first booking's page (the
        # first one emptied the wizard, so the key is looked at before the wizard's state).
        return submit_once(request, lambda: _step(request, step))
    return _step(request, step)


def _step(request: HttpRequest, step: str) -> HttpResponse:
    state = _state(request)
    missing = _first_missing_step(state)
    if _STEP_NAMES.index(step) > _STEP_NAMES.index(missing):
        return redirect("bookings:wizard", step=missing)
    handler = {"type": _type_step, "resources": _resources_step, "asset": _asset_step, "review": _review_step}
    return handler[step](request, state)


def _render(request: HttpRequest, step: str, state: dict, status: int = 200, **context) -> HttpResponse:
    position = _STEP_NAMES.index(step)
    context.update(
        step=step,
        step_title=STEPS[position][1],
        step_number=position + 1,
        step_count=len(STEPS),
        steps=[
            {"name": name, "title": title, "number": i + 1, "current": name == step}
            for i, (name, title) in enumerate(STEPS)
        ],
        item_type=BookingItemType(state["type"]).label if state.get("type") else "",
        back=_STEP_NAMES[position - 1] if position else "",
        form_key=form_key() if step == "review" else "",
    )
    return render(request, "bookings/wizard.html", context, status=status)


def _next(step: str) -> HttpResponse:
    return redirect("bookings:wizard", step=_STEP_NAMES[_STEP_NAMES.index(step) + 1])


def _type_step(request: HttpRequest, state: dict) -> HttpResponse:
    initial = {key: state.get(key) for key in ("type", "caption", "project", "parent_item")}
    form = TypeForm(_posted(request), user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        parent = data.get("parent_item")
        project = data.get("project")
        if project is not None:
            errors = services.booking_item_errors(
                user=request.user,
                project=project,
                type=data["type"],
                caption=data["caption"],
                parent_item=parent,
            )
            add_errors(form, {k: v for k, v in errors.items() if k in _TYPE_FIELDS}, "", _TYPE_FIELDS)
        elif parent is not None:
            form.add_error("parent_item", "belongs to another project.")
        if not form.errors and project is None:
            try:
                project = services.project_create(user=request.user, caption=data["new_project"])
            except ValidationError as exc:
                for key, messages_ in exc.message_dict.items():
                    for message in messages_:
                        form.add_error("new_project", message if key == "caption" else f"{key}: {message}")
        if not form.errors:
            if state.get("type") != data["type"]:
                state = {}  # another type asks for other resources and another asset
            state.update(
                type=data["type"],
                caption=data["caption"],
                project=project.pk,
                parent_item=parent.pk if parent else None,
            )
            _save(request, state)
            return _next("type")
    return _render(request, "type", state, status=400 if form.errors else 200, form=form)


def _resources_step(request: HttpRequest, state: dict) -> HttpResponse:
    item_type = state["type"]
    stored = state.get("resources") or {}
    form = ResourcesForm(
        _posted(request),
        item_type=item_type,
        initial={field_name(key): value for key, value in stored.items()},
    )
    if request.method == "POST" and form.is_valid():
        resources = form.resources()
        add_errors(
            form, _errors(request, state, resources=resources, hosting_asset=None), "resources", form.keys
        )
        if not form.errors:
            state["resources"] = resources
            state.pop("hosting_asset", None)  # checked against the resources: check it again
            _save(request, state)
            return _next("resources")
    return _render(request, "resources", state, status=400 if form.errors else 200, form=form)


def _asset_step(request: HttpRequest, state: dict) -> HttpResponse:
    stored = state.get("hosting_asset")
    initial = dict(stored or {}, create=stored is not None or "hosting_asset" not in state)
    form = AssetForm(
        _posted(request),
        item_type=state["type"],
        user=request.user,
        project=_project(request, state),
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        asset = form.hosting_asset()
        if asset is not None:
            add_errors(form, _errors(request, state, hosting_asset=asset), "hosting_asset", form.keys)
        if not form.errors:
            state["hosting_asset"] = asset
            _save(request, state)
            return _next("asset")
    return _render(request, "asset", state, status=400 if form.errors else 200, form=form)


def _review_rows(request: HttpRequest, state: dict) -> list[dict]:
    parent = _parent(request, state)
    rows = [
        {
            "key": "type",
            "label": "What to book",
            "value": BookingItemType(state["type"]).label,
            "step": "type",
        },
        {"key": "caption", "label": "Caption", "value": state["caption"], "step": "type"},
        {"key": "project", "label": "Project", "value": _project(request, state).caption, "step": "type"},
        {"key": "parent_item", "label": "Parent item", "value": parent or "(none)", "step": "type"},
    ]
    for key, value in (state.get("resources") or {}).items():
        rows.append({"key": f"resources.{key}", "label": key, "value": value, "step": "resources"})
    asset = state.get("hosting_asset")
    if asset is None:
        rows.append({"key": "hosting_asset", "label": "Hosting asset", "value": "(not now)", "step": "asset"})
    for key, value in (asset or {}).items():
        rows.append(
            {"key": f"hosting_asset.{key}", "label": f"Asset: {key}", "value": value, "step": "asset"}
        )
    return rows


def _review_step(request: HttpRequest, state: dict) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    refusal: ServiceError | None = None
    if request.method == "POST":
        project = _project(request, state)
        try:
            rate_limit_consume(customer=project.customer, action="booking_items")
            item = services.booking_item_create(
                user=request.user,
                project=project,
                type=state["type"],
                caption=state["caption"],
                resources=state.get("resources") or {},
                parent_item=_parent(request, state),
                hosting_asset=state.get("hosting_asset"),
            )
        except ValidationError as exc:
            errors = exc.message_dict
        except ServiceError as exc:
            refusal = exc
        else:
            request.session.pop(SESSION_KEY, None)
            messages.success(request, f"Booked: {item}.")
            return redirect("bookings:item", pk=item.pk)
    rows = _review_rows(request, state)
    for row in rows:
        row["errors"] = errors.pop(row["key"], [])
    other = [f"{key}: {message}" for key, msgs in errors.items() for message in msgs]
    status = 400 if any(row["errors"] for row in rows) or other else 200
    if refusal is not None:
        other.append(refusal.message)
    response = _render(request, "review", state, status=status, rows=rows, other_errors=other)
    return refused(response, refusal) if refusal is not None else response


# --- A booking item's page -----------------------------------------------------------------------


def _item_context(request: HttpRequest, pk: int) -> dict:
    item = get_object_or_404(selectors.booking_items_visible_to(request.user), pk=pk)
    return {"item": item, "creation": selectors.booking_item_creation(item)}


@login_required
def item(request: HttpRequest, pk: int) -> HttpResponse:
    context = _item_context(request, pk)
    # The verification code is shown as the TXT record to add, while it is needed.
    context["resources"] = {k: v for k, v in context["item"].resources.items() if k != "verificationCode"}
    return render(request, "bookings/item.html", context)


@login_required
def item_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The creation status alone: the page polls it to update itself."""
    return render(request, "bookings/_creation_status.html", _item_context(request, pk))


@login_required
@require_POST
def record_added(request: HttpRequest, pk: int) -> HttpResponse:
    """The customer published the domain's TXT record: tell the saga to check now (the API's signal)."""
    context = _item_context(request, pk)
    event = context["creation"].event
    if context["item"].type != BookingItemType.DOMAIN_SETUP or event is None or event.operation is None:
        raise Http404("This booking waits for no DNS record.")
    try:
        operation_signal(operation=event.operation, name=SignalName.RECORD_ADDED, user=request.user)
    except ServiceError as exc:
        messages.error(request, exc.message)
    if request.headers.get("X-Live"):
        return item_status(request, pk)
    return redirect(reverse("bookings:item", kwargs={"pk": pk}))
