from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from provisioning.celery import app
from provisioning.selectors import customers_of, operations_visible_to


@login_required
def home(request: HttpRequest) -> HttpResponse:
    operations = operations_visible_to(request.user)[:50]
    return render(request, "home.html", {"customers": customers_of(request.user), "operations": operations})


def health(request: HttpRequest) -> JsonResponse:
    """Database and broker reachability, for load balancers and operators."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503
    )
