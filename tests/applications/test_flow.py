"""Application requests end to end: PostgreSQL, Redis, a real Celery worker and the moto server."""

from __future__ import annotations

import re
import threading
import urllib.request

import pytest
from django.conf import settings
from django.db import connection

from provisioning.applications.models import ApplicationRequest
from provisioning.models import StepRun
from tests.applications.conftest import bucket_names, get, s3, submit, wait_state, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("real_services", "celery_worker", "no_bucket_left_behind"),
]


def decide(client, request_id: str, **decision):
    return client.post(f"/api/application-requests/{request_id}/decision/", decision, format="json")


def approve(client, request_id: str, region: str = "eu-west-1", profile: str = "sandbox"):
    return decide(client, request_id, approved=True, region=region, profile=profile)


def test_it_creates_the_bucket_with_its_index_page_in_the_region_the_authorizer_approved(
    team, requester, authorizer
):
    submitted = submit(requester[1])
    request_id = submitted["request"]["id"]
    assert submitted["operation"]["id"] == submitted["request"]["operation"]
    waiting = wait_state(request_id, "awaiting_decision").pk
    # The request reaches "awaiting decision" with the step; its instructions come with the wait.
    shown = wait_until(
        lambda: (answer := get(requester[1], waiting))["instructions"] and answer, 20, what="instructions"
    )
    assert shown["waiting"]["for"] == "ada"
    assert shown["waiting"]["until"] == shown["decision_deadline"]
    assert "ada must approve" in shown["instructions"]

    # The authorizer was told by email, with a link to the decision page.
    mail = "\n".join(p.read_text() for p in (settings.DATA_DIR / "mail").glob("*.log"))
    assert f"/applications/requests/{request_id}/decision/" in mail
    assert "To: ada@example.com" in mail

    answer = approve(authorizer[1], request_id)
    assert answer.status_code == 200, answer.content
    assert answer.json()["decision"]["by"] == "ada"

    done = wait_state(request_id, "ready", "failed")
    assert done.state == "ready", done.error
    shown = get(requester[1], request_id)
    assert shown["decision"] == {
        "decision": "approved",
        "by": "ada",
        "at": shown["decision"]["at"],
        "region": "eu-west-1",
        "profile": "sandbox",
        "comment": "",
    }
    [bucket] = shown["resources"]
    name = f"shop-web-{request_id.replace('-', '')[:12]}"
    assert bucket["name"] == name and bucket["region"] == "eu-west-1" and bucket["state"] == "ready"
    assert s3().get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    page = s3("eu-west-1").get_object(Bucket=name, Key="index.html")
    assert b"<h1>shop</h1>" in page["Body"].read()
    assert page["ContentType"].startswith("text/html")
    with urllib.request.urlopen(bucket["address"], timeout=5) as served:
        assert b"<h1>shop</h1>" in served.read()
    tags = {t["Key"]: t["Value"] for t in s3("eu-west-1").get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags["provisioning:profile"] == "sandbox"
    assert tags["provisioning:application-request"] == request_id


def test_it_ends_rejected_with_the_comment_and_creates_nothing(team, requester, authorizer):
    before = bucket_names()
    request_id = submit(requester[1])["request"]["id"]
    wait_state(request_id, "awaiting_decision")
    answer = decide(authorizer[1], request_id, approved=False, comment="use the shared bucket")
    assert answer.status_code == 200, answer.content

    done = wait_state(request_id, "rejected", "cancelled", "failed")
    assert done.state == "rejected"
    assert done.error == "Rejected by ada: use the shared bucket"
    shown = get(requester[1], request_id)
    assert (
        shown["decision"]["decision"] == "rejected"
        and shown["decision"]["comment"] == "use the shared bucket"
    )
    assert shown["resources"] == []
    assert bucket_names() == before
    assert not StepRun.objects.filter(operation_id=done.operation_id, step="bucket_create").exists()


def test_it_times_out_without_a_decision_and_creates_nothing(team, requester, authorizer):
    before = bucket_names()
    request_id = submit(requester[1], time_limit_seconds=3)["request"]["id"]
    wait_state(request_id, "awaiting_decision")

    done = wait_state(request_id, "timed_out", "rejected", "failed", timeout=20)
    assert done.state == "timed_out"
    assert done.error.startswith("Timed out: ada did not decide within the time limit of 3 s")
    assert 3 <= (done.finished_at - done.created_at).total_seconds() < 15
    assert done.operation.state == "timed_out"
    assert bucket_names() == before

    late = approve(authorizer[1], request_id)
    assert late.status_code == 409
    assert "time limit" in late.json()["detail"] or "ended" in late.json()["detail"]


def test_a_decision_by_someone_else_is_refused_and_the_request_keeps_waiting(
    team, requester, authorizer, colleague, outsider
):
    request_id = submit(requester[1])["request"]["id"]
    wait_state(request_id, "awaiting_decision")

    assert approve(outsider[1], request_id).status_code == 404
    refused = approve(colleague[1], request_id)
    assert refused.status_code == 403
    assert "Only ada" in refused.json()["detail"]
    # The requester may not approve her own request either.
    assert approve(requester[1], request_id).status_code == 403

    shown = get(requester[1], request_id)
    assert shown["state"] == "awaiting_decision" and shown["decision"] is None
    assert shown["waiting"]["for"] == "ada"
    row = ApplicationRequest.objects.get(pk=request_id)
    assert row.operation.state == "waiting" and not row.operation.signals.exists()

    # Cancelling through the operation's signal ends it; nothing was created.
    answer = requester[1].post(
        f"/api/operations/{row.operation_id}/signals/", {"name": "cancel", "payload": {}}, format="json"
    )
    assert answer.status_code in (200, 201, 202), answer.content
    assert wait_state(request_id, "cancelled").error.startswith("Cancelled by mia")


def test_a_second_decision_answers_409_with_the_reason(team, requester, authorizer, hostmaster):
    request_id = submit(requester[1])["request"]["id"]
    wait_state(request_id, "awaiting_decision")
    assert decide(authorizer[1], request_id, approved=False, comment="no").status_code == 200

    again = approve(authorizer[1], request_id)
    assert again.status_code == 409
    assert "already rejected by ada" in again.json()["detail"]
    by_hostmaster = approve(hostmaster[1], request_id)
    assert by_hostmaster.status_code == 409
    assert wait_state(request_id, "rejected").decision == "rejected"


def test_a_failure_after_the_bucket_was_created_removes_the_bucket(team, requester, authorizer):
    before = bucket_names()
    request_id = submit(requester[1], inject_fault="put_index")["request"]["id"]
    wait_state(request_id, "awaiting_decision")
    assert approve(authorizer[1], request_id, region="us-west-2").status_code == 200

    done = wait_state(request_id, "failed", "ready", timeout=60)
    assert done.state == "failed"
    assert "Publishing the index page failed" in done.error
    assert "put_index failed (a fault injected on purpose)" in done.error
    assert "What was created was removed" in done.error
    runs = {(r.step, r.kind, r.outcome) for r in StepRun.objects.filter(operation_id=done.operation_id)}
    assert ("bucket_create", "run", "done") in runs  # the bucket did exist...
    assert ("bucket_create", "compensate", "compensated") in runs  # ...and was removed
    [bucket] = get(requester[1], request_id)["resources"]
    assert bucket["state"] == "removed"
    assert bucket_names() == before


def test_two_concurrent_requests_for_the_same_application_get_two_buckets(team, requester, authorizer):
    ids: list[str] = []

    def send() -> None:
        ids.append(submit(requester[1])["request"]["id"])
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 2
    for request_id in ids:
        wait_state(request_id, "awaiting_decision")
    for request_id in ids:
        assert approve(authorizer[1], request_id).status_code == 200
    names = set()
    for request_id in ids:
        done = wait_state(request_id, "ready", "failed")
        assert done.state == "ready", done.error
        [bucket] = done.resources
        names.add(bucket["name"])
        page = s3("eu-west-1").get_object(Bucket=bucket["name"], Key="index.html")["Body"].read()
        assert request_id.encode() in page  # each page names its own request
    assert len(names) == 2 and names <= bucket_names()


def test_a_decision_sent_before_the_saga_waits_is_not_lost(team, requester, authorizer, celery_worker):
    celery_worker.kill()  # nothing runs: the decision arrives while the request is still "checking"
    try:
        request_id = submit(requester[1])["request"]["id"]
        assert get(requester[1], request_id)["state"] == "checking"
        assert approve(authorizer[1], request_id).status_code == 200
    finally:
        celery_worker.start()
    done = wait_state(request_id, "ready", "failed", "timed_out", timeout=60)
    assert done.state == "ready", done.error


def test_a_failed_pre_flight_check_names_the_check_and_why(team, requester, outsider):
    from provisioning.services import api_user_create_or_update

    api_user_create_or_update(username="nora", customer_name="Acme", role="member")  # not in team web
    request_id = submit(requester[1], authorizer="nora", team="web")["request"]["id"]
    done = wait_state(request_id, "failed", "awaiting_decision")
    assert done.state == "failed"
    assert "Pre-flight checks failed" in done.error
    assert "authorizer may authorize: nora is neither an authorizer of team 'web'" in done.error

    other = submit(requester[1], team="operations-and-platform", application="a" * 40)["request"]["id"]
    done = wait_state(other, "failed", "awaiting_decision")
    assert "team exists: there is no team 'operations-and-platform' at Acme" in done.error
    assert re.search(
        r"names are valid for every provider: bucket name '.+' is \d+ characters long", done.error
    )


def test_the_local_provider_serves_the_bucket_over_http(team, requester, authorizer):
    before = bucket_names()
    request_id = submit(requester[1], provider="local")["request"]["id"]
    wait_state(request_id, "awaiting_decision")
    assert approve(authorizer[1], request_id, region="local-2", profile="default").status_code == 200
    done = wait_state(request_id, "ready", "failed")
    assert done.state == "ready", done.error
    [bucket] = done.resources
    assert bucket["provider"] == "local" and bucket["region"] == "local-2"
    with urllib.request.urlopen(bucket["address"], timeout=5) as served:
        assert b"<h1>shop</h1>" in served.read()
    folder = settings.LOCAL_PROVIDER_DIR / "local-2" / "buckets" / bucket["name"]
    assert (folder / "objects" / "index.html").exists()
    assert bucket_names() == before  # nothing at aws


def test_cancelling_after_the_bucket_was_created_removes_it(team, requester, authorizer):
    before = bucket_names()
    # The index page fails on every attempt (retried for about seven seconds): time to cancel.
    request_id = submit(requester[1], inject_fault="put_index")["request"]["id"]
    wait_state(request_id, "awaiting_decision")
    assert approve(authorizer[1], request_id).status_code == 200

    def bucket_created():
        row = ApplicationRequest.objects.select_related("operation").get(pk=request_id)
        return row.operation.steps["bucket_create"]["status"] == "done"

    wait_until(bucket_created, what="bucket created")
    assert len(bucket_names() - before) == 1
    answer = requester[1].post(f"/api/application-requests/{request_id}/cancel/", {"reason": "wrong app"})
    assert answer.status_code == 202, answer.content

    done = wait_state(request_id, "cancelled", "failed")
    assert done.state == "cancelled"
    assert done.error == "Cancelled by mia: wrong app"
    assert bucket_names() == before
