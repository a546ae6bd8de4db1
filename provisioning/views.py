from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from provisioning.selectors import customers_of, operations_visible_to


@login_required
def home(request: HttpRequest) -> HttpResponse:
    operations = operations_visible_to(request.user)[:50]
    return render(request, "home.html", {"customers": customers_of(request.user), "operations": operations})
