"""`/health/`: is the service able to do its work? For load balancers, monitors and operators.

Answers 200 with every check "ok", or 503 naming what is down: the database, the broker, a queue no
live worker consumes (HEALTH_QUEUES), or a sweeper (beat) that stopped ticking. Worker liveness comes
from the heartbeat rows the workers write (provisioning.heartbeats), so a look costs one query and no
broadcast to the workers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from provisioning import heartbeats
from provisioning.celery import app

OK = "ok"


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return OK
    except Exception as exc:
        return f"error: the database is unreachable ({type(exc).__name__})"


def check_broker() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return OK
    except Exception as exc:
        return f"error: the broker is unreachable ({type(exc).__name__})"


def check_workers(consumers: dict[str, list[str]]) -> str:
    idle = [queue for queue in settings.HEALTH_QUEUES if not consumers.get(queue)]
    if idle:
        return f"error: no live worker consumes {', '.join(idle)}"
    return OK


def check_sweeper(seen_at) -> str:
    if seen_at is None:
        return "error: the sweeper (celery beat) has never ticked"
    age = (timezone.now() - seen_at).total_seconds()
    if age > heartbeats.sweeper_stale_after().total_seconds():
        return f"error: the sweeper (celery beat) last ticked {age:.0f} s ago"
    return OK


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "broker": check_broker()}
    consumers: dict[str, list[str]] = {}
    if checks["database"] == OK:
        consumers = heartbeats.consumers_by_queue(heartbeats.live_workers(), heartbeats.service_queues())
        checks["workers"] = check_workers(consumers)
        checks["sweeper"] = check_sweeper(heartbeats.sweeper_seen_at())
    else:
        checks["workers"] = checks["sweeper"] = "unknown: the database is unreachable"
    healthy = all(value == OK for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks, "queues": consumers},
        status=200 if healthy else 503,
    )
