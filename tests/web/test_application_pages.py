"""The pages of application requests, through Django's test client: the request form, the request's
status page and the authorizer's decision page.

No worker runs here: the saga is enqueued only when a transaction commits, which these tests never do;
where a page must show a later state, the test writes it onto the request row as the saga would."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from provisioning.applications.models import ApplicationRequest, Team
from tests.applications.conftest import submit

pytestmark = [pytest.mark.django_db]


def as_user(client: Client, user) -> Client:
    client.force_login(user)
    return client


def form(**changes) -> dict:
    return {
        "application": "shop",
        "team": "web",
        "provider": "local",
        "resources": ["bucket"],
        "index_html": "<h1>Shop</h1>",
        "authorizer": "ada",
        "time_limit_seconds": "300",
        **changes,
    }


def status_page(request_id) -> str:
    return f"/applications/requests/{request_id}/"


def decision_page(request_id) -> str:
    return f"/applications/requests/{request_id}/decision/"


# --- Login, visibility, CSRF ---------------------------------------------------------------------


def test_every_page_asks_for_a_login(team, requester, client):
    request_id = submit(requester[1])["request"]["id"]
    for path in (
        "/applications/requests/",
        "/applications/requests/new/",
        status_page(request_id),
        status_page(request_id) + "live/",
        decision_page(request_id),
    ):
        answer = client.get(path)
        assert answer.status_code == 302 and answer["Location"].startswith("/login/"), path


def test_another_customers_request_answers_404(team, requester, outsider, client):
    request_id = submit(requester[1])["request"]["id"]
    as_user(client, outsider)
    for path in (status_page(request_id), status_page(request_id) + "live/", decision_page(request_id)):
        assert client.get(path).status_code == 404, path
    assert client.post(decision_page(request_id), {"approved": "false"}).status_code == 404
    assert b"shop" not in client.get("/applications/requests/").content


def test_the_forms_are_refused_without_the_csrf_token(team, requester, authorizer):
    request_id = submit(requester[1])["request"]["id"]
    client = Client(enforce_csrf_checks=True)
    client.force_login(requester[0])
    assert client.post("/applications/requests/new/", form()).status_code == 403
    client.force_login(authorizer[0])
    assert client.post(decision_page(request_id), {"approved": "false"}).status_code == 403
    assert ApplicationRequest.objects.count() == 1
    assert ApplicationRequest.objects.get().decision == ""


# --- The request form ----------------------------------------------------------------------------


def test_a_team_member_requests_resources_and_lands_on_the_status_page(team, requester, outsider, client):
    Team.objects.create(customer=outsider.memberships.get().customer, name="globex-ops")
    shown = as_user(client, requester[0]).get("/applications/requests/new/")
    page = shown.content.decode()
    for label in (
        "Application",
        "Team",
        "Provider",
        "Resources",
        "Authorizer",
        "Time limit for the decision",
    ):
        assert f">{label}" in page, label
    assert "globex-ops" not in page and "oscar" not in page  # only her customer's teams and people
    authorizers = [value for value, _ in shown.context["form"].fields["authorizer"].choices]
    assert authorizers == ["", "ada", "carl"]  # not Mia herself: she cannot authorize her own request

    answer = client.post("/applications/requests/new/", form())
    created = ApplicationRequest.objects.get()
    assert answer.status_code == 302 and answer["Location"] == status_page(created.pk)
    assert (created.application, created.team_name, created.provider, created.authorizer_username) == (
        "shop",
        "web",
        "local",
        "ada",
    )
    assert created.requested_resources == {"bucket": {"index_html": "<h1>Shop</h1>"}}
    assert created.time_limit_seconds == 300 and created.requester == requester[0]


def test_request_errors_are_shown_next_to_their_fields(team, requester, client, settings):
    settings.APPLICATIONS_DECISION_TIMEOUT_MAX = 600
    as_user(client, requester[0])
    answer = client.post(
        "/applications/requests/new/", form(application="Shop_1", team="", resources=[], authorizer="")
    )
    assert answer.status_code == 400
    errors = answer.context["form"].errors
    assert errors["application"] == [
        "Use lowercase letters, digits and hyphens only (a letter or digit first)."
    ]
    assert errors["team"] == ["This field is required."]
    assert errors["resources"] == ["This field is required."]
    assert errors["authorizer"] == ["This field is required."]
    answer = client.post("/applications/requests/new/", form(time_limit_seconds="9999"))
    assert answer.status_code == 400
    assert answer.context["form"].errors["time_limit_seconds"] == ["must be between 1 and 600 seconds."]
    assert "must be between 1 and 600 seconds." in answer.content.decode()
    assert not ApplicationRequest.objects.exists()


# --- The status page -----------------------------------------------------------------------------


def test_the_status_page_says_whom_it_waits_for_until_when(team, requester, client):
    request_id = submit(requester[1])["request"]["id"]
    ApplicationRequest.objects.filter(pk=request_id).update(state="awaiting_decision")
    row = ApplicationRequest.objects.get(pk=request_id)
    page = as_user(client, requester[0]).get(status_page(request_id)).content.decode()
    assert "Waiting for <strong>ada</strong> to decide until" in page
    assert f"{row.decision_deadline:%Y-%m-%d %H:%M:%S} UTC" in page
    assert 'data-seconds-left="' in page and "/static/provisioning/live." in page
    assert f'data-live-url="{status_page(request_id)}live/"' in page
    assert "data-final" not in page
    live = client.get(status_page(request_id) + "live/")
    assert live.status_code == 200 and b"<html" not in live.content and b"Awaiting decision" in live.content


def test_the_status_page_shows_the_resources_with_their_addresses_once_ready(
    team, requester, authorizer, client
):
    request_id = submit(requester[1])["request"]["id"]
    ApplicationRequest.objects.filter(pk=request_id).update(
        state="ready",
        decision="approved",
        decided_by=authorizer[0],
        decided_at=timezone.now(),
        region="local-1",
        profile="default",
        finished_at=timezone.now(),
        resources=[
            {
                "kind": "bucket",
                "name": "shop-web-1",
                "region": "local-1",
                "state": "ready",
                "address": "http://127.0.0.1:40000/",
            }
        ],
    )
    page = as_user(client, requester[0]).get(status_page(request_id) + "live/").content.decode()
    assert "data-final" in page
    assert 'href="http://127.0.0.1:40000/"' in page
    assert "Approved by ada" in page and "region local-1, profile default" in page


def test_the_status_page_shows_a_failure_with_its_message_and_what_to_do(team, requester, client):
    request_id = submit(requester[1])["request"]["id"]
    ApplicationRequest.objects.filter(pk=request_id).update(
        state="failed",
        error="Pre-flight checks failed: requester belongs to the team.",
        finished_at=timezone.now(),
    )
    page = as_user(client, requester[0]).get(status_page(request_id)).content.decode()
    assert "Pre-flight checks failed: requester belongs to the team." in page
    assert "What to do: What was created was removed again." in page


# --- The decision page ---------------------------------------------------------------------------


def test_the_decision_page_shows_the_time_left_and_both_choices(team, requester, authorizer, client):
    request_id = submit(requester[1])["request"]["id"]
    page = as_user(client, authorizer[0]).get(decision_page(request_id)).content.decode()
    seconds = int(page.split('data-seconds-left="')[1].split('"')[0])
    assert 50 <= seconds <= 60  # the request's time limit is 60 s
    assert 'data-disables="#decision-form"' in page
    for label in ("Region", "Profile", "Comment"):
        assert f">{label}" in page, label
    assert ">Approve</button>" in page and ">Reject</button>" in page


def test_the_authorizer_rejects_with_a_comment(team, requester, authorizer, client):
    request_id = submit(requester[1])["request"]["id"]
    answer = as_user(client, authorizer[0]).post(
        decision_page(request_id), {"approved": "false", "comment": "Use the shared bucket."}
    )
    assert answer.status_code == 302
    row = ApplicationRequest.objects.get(pk=request_id)
    assert (row.decision, row.comment, row.region) == ("rejected", "Use the shared bucket.", "")
    page = client.get(decision_page(request_id)).content.decode()
    assert "Rejected by ada" in page and "Use the shared bucket." in page and "decision-form" not in page


def test_an_approval_names_what_is_missing_next_to_the_field(team, requester, authorizer, client):
    request_id = submit(requester[1])["request"]["id"]
    answer = as_user(client, authorizer[0]).post(
        decision_page(request_id), {"approved": "true", "region": "eu-west-1"}
    )
    assert answer.status_code == 400
    assert answer.context["form"].errors["profile"] == ["choose the profile to provision with."]
    answer = client.post(decision_page(request_id), {"region": "eu-west-1", "profile": "default"})
    assert answer.status_code == 400 and answer.context["form"].errors["approved"] == [
        "Press Approve or Reject."
    ]
    assert ApplicationRequest.objects.get(pk=request_id).decision == ""


def test_an_expired_request_can_no_longer_be_decided(team, requester, authorizer, client):
    request_id = submit(requester[1])["request"]["id"]
    ApplicationRequest.objects.filter(pk=request_id).update(
        decision_deadline=timezone.now() - timedelta(seconds=5), state="awaiting_decision"
    )
    shown = as_user(client, authorizer[0]).get(decision_page(request_id))
    page = shown.content.decode()
    assert "decision-form" not in page
    assert "The time limit for a decision passed at" in page and "expired" in page
    answer = client.post(
        decision_page(request_id), {"approved": "true", "region": "eu-west-1", "profile": "default"}
    )
    assert answer.status_code == 409
    assert ApplicationRequest.objects.get(pk=request_id).decision == ""
