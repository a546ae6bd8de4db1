"""The authorizer's decision page, reached from the notification email. It calls the same service as
the API (`application_request_decide`), so the same rules hold: only the named authorizer or a
hostmaster, one decision, before the deadline."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from provisioning.applications import selectors, services
from provisioning.applications.forms import DecisionForm
from provisioning.services import ServiceError


@login_required
def decision(request: HttpRequest, pk) -> HttpResponse:
    target = get_object_or_404(selectors.requests_visible_to(request.user), pk=pk)
    may_decide = services.may_decide(request=target, user=request.user)
    open_for_decision = may_decide and not target.decision and not target.is_terminal
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
                for field, messages in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, messages)
                status = 400
            except ServiceError as exc:
                form.add_error(None, exc.message)
                status = exc.code
            else:
                return redirect(request.path)
        else:
            status = 400
    context = {"target": target, "form": form, "may_decide": may_decide}
    return render(request, "applications/decision.html", context, status=status)
