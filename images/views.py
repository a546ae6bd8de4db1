"""Pages of the images app: the "Build and launch" wizard (see `images.wizard`) and the reservation
status page, which updates itself from a small HTML fragment. Every page asks for a login and shows
only what `images.selectors` lets the user see (another customer's reservation answers 404)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from images import selectors, services
from images.models import Reservation
from images.wizard import FORM_STEPS, STEPS, TITLES, Wizard
from provisioning.choices import OperationState
from provisioning.ratelimit import rate_limit_consume, refused
from provisioning.services import ServiceError
from provisioning.submit_once import form_key, submit_once


@login_required
def index(request: HttpRequest) -> HttpResponse:
    reservations = selectors.reservations_visible_to(request.user)[:50]
    return render(request, "images/index.html", {"reservations": reservations})


@login_required
def wizard_start(request: HttpRequest) -> HttpResponse:
    return redirect("images:wizard", step=Wizard(request).first_incomplete())


@login_required
@require_POST
def wizard_reset(request: HttpRequest) -> HttpResponse:
    Wizard(request).clear()
    return redirect("images:wizard", step=STEPS[0])


def _render(
    request: HttpRequest, wizard: Wizard, step: str, context: dict, status: int = 200
) -> HttpResponse:
    context = {
        "step": step,
        "title": TITLES[step],
        "number": STEPS.index(step) + 1,
        "count": len(STEPS),
        "navigation": wizard.navigation(step),
        "customer": wizard.customer,
        **context,
    }
    return render(request, f"images/wizard_{step}.html", context, status=status)


def _with_another_row(wizard: Wizard, post, part: str):
    """The image step shown again with what was entered and one more empty row of `part` (unbound, so
    that no error is shown for fields not filled in yet)."""
    posted = wizard.forms("image", post)
    forms = wizard.forms("image")
    forms.form.initial = {name: posted.form[name].value() for name in posted.form.fields}
    for name in ("users", "files"):
        formset = getattr(posted, name)
        rows = [{k: f[k].value() for k in f.fields} for f in formset.forms if f.has_changed()]
        fresh = type(formset)(initial=rows, prefix=name)
        fresh.extra = 1 if name == part or not rows else 0
        setattr(forms, name, fresh)
    return forms


@login_required
def wizard_step(request: HttpRequest, step: str) -> HttpResponse:
    if step not in STEPS:
        raise Http404("There is no such step.")
    wizard = Wizard(request)
    if not wizard.customers:
        return render(request, "no_customer.html", {"what": "Build and launch"}, status=403)
    if step == "review" and request.method == "POST":
        # Built and launched once per render of the page: a second click gets the first launch's
        # page (the first one emptied the wizard, so the key is looked at before the wizard's state).
        return submit_once(request, lambda: _review(request, wizard))
    if step == "review":
        return _review(request, wizard)
    first = wizard.first_incomplete()
    if STEPS.index(step) > STEPS.index(first):
        return redirect("images:wizard", step=first)
    status = 200
    if request.method != "POST":
        forms = wizard.bound(step) or wizard.forms(step)
    elif step == "image" and ("add_user" in request.POST or "add_file" in request.POST):
        forms = _with_another_row(wizard, request.POST, "users" if "add_user" in request.POST else "files")
    elif step == "target" and wizard.forms(step, request.POST).form.provider_changed():
        # Another provider: show its regions and accounts (the choices shown were the other one's).
        forms = wizard.forms(step)
        forms.form = wizard.target_form(provider=wizard.provider(request.POST))
    else:
        forms = wizard.bound(step, (step, request.POST))
        if forms.is_valid():
            wizard.store(step, request.POST)
            following = STEPS[STEPS.index(step) + 1]
            first = wizard.first_incomplete()
            return redirect("images:wizard", step=min(following, first, key=STEPS.index))
        status = 400
    return _render(request, wizard, step, {"forms": forms}, status)


def _review(request: HttpRequest, wizard: Wizard) -> HttpResponse:
    first = wizard.first_incomplete()
    if first != "review":
        return redirect("images:wizard", step=first)
    wanted = wizard.request_data()
    context = {
        "wanted": wanted,
        "target": wizard.bound("target").form.cleaned_data,
        "launch": wizard.bound("launch").form.cleaned_data,
        "steps": FORM_STEPS,
    }
    if request.method != "POST":
        return _render(request, wizard, "review", {**context, "form_key": form_key()})
    try:
        if wizard.customer is not None:
            rate_limit_consume(customer=wizard.customer, action="image_builds")
        launched = services.image_build_launch(customer=wizard.customer, user=request.user, **wanted)
    except ValidationError as exc:
        if wizard.first_incomplete() != "review":
            return redirect("images:wizard", step=wizard.first_incomplete())
        context.update(errors=exc.message_dict, form_key=form_key())
        return _render(request, wizard, "review", context, status=400)
    except ServiceError as exc:
        context.update(problem=exc.message, form_key=form_key())
        return refused(_render(request, wizard, "review", context), exc)
    wizard.clear()
    return redirect("images:reservation", pk=launched.reservation.pk)


# --- The reservation's status ------------------------------------------------------------------------

WHAT_TO_DO = {
    OperationState.FAILED: "What was launched was terminated again. Correct what the message names and "
    "build and launch again.",
    OperationState.TIMED_OUT: "The launch took longer than it may; what was launched was terminated "
    "again. Try again later, or with fewer instances or regions.",
    OperationState.CANCELLED: "What was launched was terminated again. Build and launch again when you "
    "need the instances.",
}


def _status(request: HttpRequest, pk: int) -> dict:
    reservation: Reservation = get_object_or_404(selectors.reservations_visible_to(request.user), pk=pk)
    titles = reservation.step_titles or []
    step = min(max(reservation.step, 1), len(titles)) if titles else 0
    done = reservation.steps if reservation.success else max(step - 1, 0)
    return {
        "reservation": reservation,
        "current_title": titles[step - 1] if step else "",
        "done_steps": done,
        "step_rows": [
            {
                "number": i + 1,
                "title": title,
                "state": "done" if i < done else ("current" if i + 1 == step else "todo"),
            }
            for i, title in enumerate(titles)
        ],
        "what_to_do": WHAT_TO_DO.get(reservation.state, ""),
        "instances": list(reservation.instances.all()),
    }


@login_required
def reservation(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "images/reservation.html", _status(request, pk))


@login_required
def reservation_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the status page alone: the page's script fetches it every second."""
    response = render(request, "images/_reservation_live.html", _status(request, pk))
    response["Cache-Control"] = "no-store"
    return response
