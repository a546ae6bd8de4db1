"""The application-request API without a worker: access, validation, and what is stored."""

from __future__ import annotations

import pytest

from provisioning.applications.models import ApplicationRequest
from provisioning.models import Operation, Signal
from tests.applications.conftest import body, submit
from tests.fixtures.actors import client_for

pytestmark = pytest.mark.django_db


def test_it_answers_401_without_credentials():
    assert client_for(None).get("/api/application-requests/").status_code == 401
    assert client_for(None).post("/api/application-requests/", body(), format="json").status_code == 401


def test_it_answers_201_with_the_request_and_its_operation(team, requester):
    answer = submit(requester[1])
    request, operation = answer["request"], answer["operation"]
    assert request["state"] == "checking"
    assert request["team"] == "web" and request["authorizer"] == "ada" and request["requester"] == "mia"
    assert request["requested_resources"] == {"bucket": {}}
    assert request["provider"] == "aws" and request["time_limit_seconds"] == 60
    assert operation["kind"] == "applications.provision" and operation["subject_id"] == request["id"]
    assert Operation.objects.get(pk=operation["id"]).queue == "aws"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"application": "Shop!"}, "application"),
        ({"application": ""}, "application"),
        ({"team": "a b"}, "team"),
        ({"authorizer": ""}, "authorizer"),
        ({"provider": "gcp"}, "provider"),
        ({"time_limit_seconds": 0}, "time_limit_seconds"),
        ({"time_limit_seconds": 10**7}, "time_limit_seconds"),
        ({"requested_resources": {"database": {}}}, "requested_resources"),
        ({"requested_resources": {}}, "requested_resources"),
        ({"requested_resources": {"bucket": {"colour": "red"}}}, "requested_resources"),
        ({"inject_fault": "reboot"}, "inject_fault"),
    ],
)
def test_it_answers_400_with_field_errors_and_stores_nothing(team, requester, changes, field):
    answer = requester[1].post("/api/application-requests/", body(**changes), format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert not ApplicationRequest.objects.exists() and not Operation.objects.exists()


def test_fault_injection_is_refused_when_the_service_does_not_allow_it(team, requester, settings):
    settings.APPLICATIONS_FAULT_INJECTION = False
    answer = requester[1].post("/api/application-requests/", body(inject_fault="put_index"), format="json")
    assert answer.status_code == 400
    assert "APPLICATIONS_FAULT_INJECTION" in answer.json()["inject_fault"][0]


def test_the_default_time_limit_comes_from_the_deployment_setting(team, requester, settings):
    without_limit = {k: v for k, v in body().items() if k != "time_limit_seconds"}
    settings.APPLICATIONS_DECISION_TIMEOUT = 300
    answer = requester[1].post("/api/application-requests/", without_limit, format="json")
    assert answer.json()["request"]["time_limit_seconds"] == 300
    del settings.APPLICATIONS_DECISION_TIMEOUT
    answer = requester[1].post("/api/application-requests/", without_limit, format="json")
    assert answer.json()["request"]["time_limit_seconds"] == 120  # the embedded default: two minutes


def test_another_customers_request_answers_404(team, requester, outsider, hostmaster):
    request_id = submit(requester[1])["request"]["id"]
    assert outsider[1].get(f"/api/application-requests/{request_id}/").status_code == 404
    assert outsider[1].get("/api/application-requests/").json()["count"] == 0
    assert hostmaster[1].get(f"/api/application-requests/{request_id}/").status_code == 200


def test_the_list_is_paginated(team, requester):
    for _ in range(3):
        submit(requester[1])
    answer = requester[1].get("/api/application-requests/").json()
    assert answer["count"] == 3 and len(answer["results"]) == 3 and "next" in answer


def test_a_bad_decision_answers_400_and_the_request_keeps_waiting(team, requester, authorizer):
    request_id = submit(requester[1])["request"]["id"]
    url = f"/api/application-requests/{request_id}/decision/"
    answer = authorizer[1].post(url, {"approved": True, "region": "mars-1", "profile": "nope"}, format="json")
    assert answer.status_code == 400
    assert "no region 'mars-1'" in answer.json()["region"][0]
    assert "no profile" in answer.json()["profile"][0]
    assert authorizer[1].post(url, {"region": "eu-west-1"}, format="json").status_code == 400
    row = ApplicationRequest.objects.get(pk=request_id)
    assert row.decision == "" and not Signal.objects.filter(operation=row.operation).exists()


def test_a_hostmaster_may_decide(team, requester, hostmaster):
    request_id = submit(requester[1])["request"]["id"]
    answer = hostmaster[1].post(
        f"/api/application-requests/{request_id}/decision/", {"approved": False}, format="json"
    )
    assert answer.status_code == 200
    assert answer.json()["decision"]["by"] == "hank"
    signal = Signal.objects.get(operation__application_request__pk=request_id)
    assert signal.name == "decision" and signal.payload["approved"] is False


def test_the_teams_of_the_customer_are_listed(team, requester, outsider):
    [shown] = requester[1].get("/api/application-teams/").json()["results"]
    assert shown["name"] == "web" and shown["authorizers"] == ["ada"]
    assert sorted(shown["members"]) == ["carl", "mia"]
    assert outsider[1].get("/api/application-teams/").json()["count"] == 0


def test_the_schema_documents_the_endpoints(requester):
    answer = requester[1].get("/api/schema/", HTTP_ACCEPT="application/json")
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "/api/application-requests/{id}/decision/" in text
    assert "DecisionInput" in text


def test_the_admin_pages_show_requests_and_teams(team, requester, client, django_user_model, settings):
    settings.STORAGES = {  # no collectstatic manifest in tests
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    submit(requester[1])
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(admin)
    assert client.get("/admin/applications/applicationrequest/?state__exact=checking").status_code == 200
    row = ApplicationRequest.objects.get()
    page = client.get(f"/admin/applications/applicationrequest/{row.pk}/change/")
    assert page.status_code == 200 and b"shop" in page.content
    assert client.get("/admin/applications/team/").status_code == 200
    answer = client.post(
        "/admin/applications/applicationrequest/",
        {"action": "cancel", "_selected_action": [str(row.pk)]},
        follow=True,
    )
    assert answer.status_code == 200
    row.refresh_from_db()
    assert row.state == "cleaning_up" or row.state == "cancelled"
    assert row.operation.end_state == "cancelled"
