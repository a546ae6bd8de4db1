"""The operations API and the users behind it: who sees what, and how signals reach a saga."""

import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from provisioning.models import Operation, Signal
from provisioning.saga import runner
from tests import sagas  # noqa: F401  (registers the test sagas)
from tests.fixtures.actors import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def operation(owner) -> Operation:
    user, _ = owner
    with transaction.atomic():
        return runner.start(
            kind="test_five",
            customer=user.memberships.get().customer,
            data={"plan": {"s1": ["wait:approve:60"]}},
        )


def test_it_prints_the_token_alone_on_the_last_line_of_create_api_user():
    out = StringIO()
    call_command("create_api_user", "ada", "--customer", "Acme", "--password", "s3cret-Pass-1", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    assert len(token) == 40 and " " not in token
    again = StringIO()
    call_command("create_api_user", "ada", "--customer", "Acme", "--hostmaster", stdout=again)
    assert again.getvalue().strip().splitlines()[-1] == token
    assert client_for(token).get("/api/operations/").status_code == 200


def test_it_answers_401_without_credentials(operation):
    assert client_for(None).get(f"/api/operations/{operation.pk}/").status_code == 401


def test_it_answers_404_for_an_unknown_operation(owner):
    assert owner[1].get(f"/api/operations/{uuid.uuid4()}/").status_code == 404


def test_it_shows_the_owner_its_operation_with_steps_and_progress(owner, operation):
    answer = owner[1].get(f"/api/operations/{operation.pk}/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["state"] == "pending"
    assert body["progress"] == {"step": 1, "steps": 5, "title": "Step s1", "text": "step 1 of 5: Step s1"}
    assert [s["name"] for s in body["steps"]] == ["s1", "s2", "s3", "s4", "s5"]


def test_it_answers_404_to_another_customer(outsider, operation):
    assert outsider[1].get(f"/api/operations/{operation.pk}/").status_code == 404
    assert outsider[1].get("/api/operations/").json()["count"] == 0
    answer = outsider[1].post(f"/api/operations/{operation.pk}/signals/", {"name": "approve"}, format="json")
    assert answer.status_code == 404
    assert not Signal.objects.exists()


def test_it_lets_a_hostmaster_see_every_operation(hostmaster, operation):
    assert hostmaster[1].get(f"/api/operations/{operation.pk}/").status_code == 200


def test_it_stores_a_signal_sent_through_the_api(owner, operation):
    answer = owner[1].post(
        f"/api/operations/{operation.pk}/signals/",
        {"name": "approve", "payload": {"ok": True}},
        format="json",
    )
    assert answer.status_code == 202
    assert Signal.objects.get().payload == {"ok": True}


def test_it_cancels_through_the_cancel_signal_and_refuses_a_second_cancel(owner, operation):
    client = owner[1]
    answer = client.post(f"/api/operations/{operation.pk}/signals/", {"name": "cancel"}, format="json")
    assert answer.status_code == 202
    operation.refresh_from_db()
    assert operation.state == "compensating" and operation.end_state == "cancelled"
    assert "Cancelled by olivia" in operation.error_message
    again = client.post(f"/api/operations/{operation.pk}/signals/", {"name": "cancel"}, format="json")
    assert again.status_code == 409


def test_it_answers_400_to_malformed_json_and_bad_signal_names(owner, operation):
    client = owner[1]
    url = f"/api/operations/{operation.pk}/signals/"
    assert client.post(url, data=b"{broken", content_type="application/json").status_code == 400
    answer = client.post(url, {"name": "Bad Name!"}, format="json")
    assert answer.status_code == 400 and "name" in answer.json()
    assert not Signal.objects.exists()


def test_it_serves_the_openapi_schema(owner):
    answer = client_for(None).get("/api/schema/?format=json")
    assert answer.status_code == 200
    assert "/api/operations/{id}/" in answer.json()["paths"]
