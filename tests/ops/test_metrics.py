"""/metrics: Prometheus families computed from the rows, after sagas ran on the real worker."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from provisioning.services import api_user_create_or_update, operation_cancel
from tests import sagas
from tests.engine.helpers import start, wait_final, wait_state

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client, **headers) -> dict[str, dict[tuple, float]]:
    """family sample name → {sorted labels: value}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get(name, {}).get(tuple(sorted(labels.items())))


@pytest.fixture(autouse=True)
def side_effect_table():
    sagas.ensure_table()


@pytest.mark.usefixtures("celery_worker")
def test_it_exposes_operations_step_durations_retries_and_failures_after_sagas_ran(client):
    succeeded = wait_final(start("test_five", {"s2": ["retry:0.2", "error", "done"]}).pk, sweep=False)
    failed = wait_final(start("test_five", {"s4": ["fail"]}).pk)
    waiting = wait_state(start("test_five", {"s3": ["wait:approve:60"]}).pk, "waiting")
    assert (succeeded.state, failed.state) == ("succeeded", "failed")

    samples = scrape(client)

    assert value(samples, "provisioning_operations", kind="test_five", state="waiting") == 1
    assert value(samples, "provisioning_operations_finished_recent", kind="test_five", state="succeeded") == 1
    assert value(samples, "provisioning_operations_finished_recent", kind="test_five", state="failed") == 1
    # Durations: every attempt of s1 that finished (3 operations ran it), in the buckets and the sum.
    assert (
        value(samples, "provisioning_step_duration_seconds_bucket", kind="test_five", step="s1", le="+Inf")
        == 3
    )
    assert value(samples, "provisioning_step_duration_seconds_gcount", kind="test_five", step="s1") == 3
    assert value(samples, "provisioning_step_duration_seconds_gsum", kind="test_five", step="s1") > 0
    buckets = [
        v
        for labels, v in samples["provisioning_step_duration_seconds_bucket"].items()
        if ("step", "s1") in labels
    ]
    assert buckets == sorted(buckets)  # cumulative
    # Retries (a planned retry, then an unexpected error) and failures, by step and outcome.
    assert (
        value(samples, "provisioning_step_attempts_recent", kind="test_five", step="s2", outcome="retry") == 2
    )
    assert (
        value(samples, "provisioning_step_attempts_recent", kind="test_five", step="s4", outcome="failed")
        == 1
    )
    assert (
        value(
            samples, "provisioning_step_attempts_recent", kind="test_five", step="s3", outcome="compensated"
        )
        == 1
    )
    assert value(samples, "provisioning_metrics_window_seconds") == 300

    deadline = time.monotonic() + 40  # heartbeats come every WORKER_HEARTBEAT_INTERVAL
    while value(samples, "provisioning_queue_workers", queue="aws") != 1 and time.monotonic() < deadline:
        time.sleep(1)
        samples = scrape(client)
    assert {
        q: value(samples, "provisioning_queue_workers", queue=q) for q in ("default", "local", "aws")
    } == {
        "default": 1,
        "local": 1,
        "aws": 1,
    }
    operation_cancel(operation=waiting, reason="the test is over")
    # Its undoing runs on the worker: let it end before the test's tables are emptied (a worker writing
    # while they are truncated deadlocks with the truncation).
    assert wait_final(waiting.pk).state == "cancelled"


def test_it_refuses_a_scraper_outside_the_allowed_networks_without_the_token(client, settings):
    settings.METRICS_TOKEN = "scrape-token-of-the-test-0123456789"
    outside = {"REMOTE_ADDR": "203.0.113.7"}
    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/metrics", **outside, HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 403
    ok = client.get("/metrics", **outside, HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    assert ok.status_code == 200 and b"provisioning_metrics_window_seconds" in ok.content
    # Loopback is allowed, but not when the request came through nginx (which adds X-Forwarded-For).
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 403


def test_it_lets_a_logged_in_hostmaster_read_it_and_nobody_else(client):
    hostmaster, _ = api_user_create_or_update(username="hilda", customer_name="Ops", hostmaster=True)
    customer, _ = api_user_create_or_update(username="carl", customer_name="Acme")
    outside = {"REMOTE_ADDR": "203.0.113.7"}
    client.force_login(customer)
    assert client.get("/metrics", **outside).status_code == 403
    client.force_login(hostmaster)
    assert client.get("/metrics", **outside).status_code == 200
