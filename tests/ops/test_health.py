"""/health/: the database, the broker, a live worker on every queue (heartbeats), the sweeper."""

import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from provisioning import health, heartbeats
from provisioning.models import Heartbeat
from provisioning.tasks import sweep
from tests.ops.helpers import get_json

pytestmark = pytest.mark.django_db(transaction=True)


def wait_healthy(client, timeout: float = 40.0):
    """Heartbeats come every WORKER_HEARTBEAT_INTERVAL: an earlier test's flush may have removed them."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/health/")
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


@pytest.mark.usefixtures("celery_worker")
def test_it_answers_200_with_every_check_ok_when_a_worker_and_the_sweeper_run(client, celery_worker):
    sweep.delay()  # the tick beat would send: the worker runs the sweeper, which signs its heartbeat
    response = wait_healthy(client)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "workers": "ok", "sweeper": "ok"}
    assert set(body["queues"]) == {"default", "local", "aws"}
    # The test worker runs without -Q: one node consumes every queue.
    assert all(any(name.startswith("worker-") for name in names) for names in body["queues"].values())
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.usefixtures("celery_worker")
def test_it_answers_503_naming_the_broker_when_the_broker_url_points_nowhere(gunicorn):
    nowhere = "redis://127.0.0.1:9/0"  # discard port: nothing listens there
    with gunicorn(CELERY_BROKER_URL=nowhere, CELERY_RESULT_BACKEND=nowhere) as web:
        status, body = get_json(f"{web}/health/")
    assert status == 503
    assert body["status"] == "error"
    assert body["checks"]["broker"].startswith("error: the broker is unreachable")
    assert body["checks"]["database"] == "ok"


def test_it_answers_503_naming_the_database_when_it_is_down(gunicorn):
    with gunicorn(DATABASE_URL="postgres://postgres@127.0.0.1:9/nowhere") as web:
        status, body = get_json(f"{web}/health/")
    assert status == 503
    assert body["checks"]["database"].startswith("error: the database is unreachable")
    assert body["checks"]["broker"] == "ok"
    assert body["checks"]["workers"].startswith("unknown")


def test_it_names_every_queue_no_live_worker_consumes():
    consumers = {"default": ["default@web1"], "local": [], "aws": []}
    assert health.check_workers(consumers) == "error: no live worker consumes local, aws"
    assert health.check_workers({q: ["w@h"] for q in ("default", "local", "aws")}) == "ok"


def test_it_counts_a_worker_silent_for_three_intervals_as_gone():
    heartbeats.heartbeat_record(name="aws@gone", role="worker", queues=["aws"])
    heartbeats.heartbeat_record(name="local@alive", role="worker", queues=["local"])
    stale = timezone.now() - heartbeats.worker_stale_after() - timedelta(seconds=1)
    Heartbeat.objects.filter(name="aws@gone").update(seen_at=stale)
    live = heartbeats.live_workers()
    assert "aws@gone" not in live and live.get("local@alive") == ["local"]


def test_it_reports_a_sweeper_that_stopped_ticking():
    assert health.check_sweeper(None) == "error: the sweeper (celery beat) has never ticked"
    late = timezone.now() - heartbeats.sweeper_stale_after() - timedelta(seconds=5)
    assert health.check_sweeper(late).startswith("error: the sweeper (celery beat) last ticked")
    assert health.check_sweeper(timezone.now()) == "ok"


def test_the_api_and_the_pages_answer_503_with_retry_after_while_the_database_is_down(gunicorn):
    """Not a 500: the client is told to come back, and that what it created may have been stored."""
    with gunicorn(DATABASE_URL="postgres://postgres@127.0.0.1:9/nowhere") as web:
        api = requests.post(
            f"{web}/api/booking-items/",
            json={"project": 1, "type": "PRIVATE_CLOUD", "caption": "Pool"},
            headers={"Authorization": "Token 0123456789abcdef0123456789abcdef01234567"},
            timeout=20,
        )
        page = requests.get(f"{web}/", cookies={"sessionid": "a-session-the-database-would-know"}, timeout=20)
    assert api.status_code == 503 and api.headers["Retry-After"] == "30"
    assert api.json()["detail"].startswith("The database is unavailable right now")
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    assert "Try again shortly" in page.text and "may have been stored" in page.text
