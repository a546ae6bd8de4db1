"""The Idempotency-Key of the API's creating POSTs: what a repeat gets, whose keys they are, what frees
a key, and when keys are forgotten (PostgreSQL; the sagas stay pending: no worker)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from bookings.models import BookingItem, Project
from images.models import CloudAccount
from provisioning.models import IdempotencyKey, Signal
from provisioning.orders.models import Order
from provisioning.services import api_user_create_or_update, idempotency_key_claim, idempotency_scope
from provisioning.tasks import idempotency_keys_purge
from tests.fixtures.actors import client_for
from tests.security.conftest import ORDER

pytestmark = pytest.mark.django_db


def keyed(client, path: str, body, key: str, fmt: str = "json"):
    if fmt == "yaml":
        return client.generic("POST", path, body, content_type="application/yaml", HTTP_IDEMPOTENCY_KEY=key)
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def acme_project(owner) -> Project:
    return Project.objects.create(customer=owner[0].memberships.get().customer, caption="Shop")


def booking(project: Project, caption: str = "Pool") -> dict:
    return {
        "project": project.pk,
        "type": "PRIVATE_CLOUD",
        "caption": caption,
        "resources": {"CPU": 1, "RAM": 1, "SSD": 25},
    }


def test_a_repeated_booking_answers_the_first_201_and_books_once(owner, acme_project):
    key = str(uuid.uuid4())
    first = keyed(owner[1], "/api/booking-items/", booking(acme_project), key)
    again = keyed(owner[1], "/api/booking-items/", booking(acme_project), f'"{key}"')  # the sf-string form
    assert (first.status_code, again.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in first and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content and again["Content-Type"] == first["Content-Type"]
    assert BookingItem.objects.count() == 1
    different = keyed(owner[1], "/api/booking-items/", booking(acme_project, "Pool 2"), key)
    assert different.status_code == 422 and BookingItem.objects.count() == 1


def test_a_key_used_on_another_path_answers_422(owner, acme_project):
    key = str(uuid.uuid4())
    assert keyed(owner[1], "/api/projects/", {"caption": "Web"}, key).status_code == 201
    answer = keyed(owner[1], "/api/cloud-accounts/", {"caption": "Web"}, key)
    assert answer.status_code == 422 and not CloudAccount.objects.exists()


def test_keys_are_per_customer_and_a_user_of_several_customers_has_keys_of_their_own(owner, outsider):
    key = "same-key-everywhere"
    acme = keyed(owner[1], "/api/projects/", {"caption": "Web"}, key)
    globex = keyed(outsider[1], "/api/projects/", {"caption": "Web"}, key)
    assert (acme.status_code, globex.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in globex and acme.json()["id"] != globex.json()["id"]
    # Mia of Acme: a colleague's key and request are the customer's, so she gets Olivia's answer.
    _, mia_token = api_user_create_or_update(username="mia", customer_name="Acme")
    colleague = keyed(client_for(mia_token), "/api/projects/", {"caption": "Web"}, key)
    assert colleague["Idempotent-Replayed"] == "true" and colleague.content == acme.content
    # Mia also works for Globex now: her keys are hers, nobody else's answers reach her.
    user, _ = api_user_create_or_update(username="mia", customer_name="Globex")
    assert idempotency_scope(user) == f"user:{user.pk}"
    body = {"caption": "Mia's", "customer": acme.json()["customer"]}
    mine = keyed(client_for(mia_token), "/api/projects/", body, key)
    assert mine.status_code == 201 and "Idempotent-Replayed" not in mine
    assert Project.objects.count() == 3


@pytest.mark.parametrize("header", ["", '""', "x" * 256, "bad key", "caf\u00e9"])
def test_a_malformed_key_answers_400_and_creates_nothing(owner, header):
    answer = owner[1].post(
        "/api/projects/",
        {"caption": "Web"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=header.encode().decode("latin-1"),
    )
    assert answer.status_code == 400, answer.content
    assert "Idempotency-Key" in answer.json()
    assert not Project.objects.exists() and not IdempotencyKey.objects.exists()


def test_a_refused_request_frees_its_key(owner, acme_project):
    key = str(uuid.uuid4())
    bad = keyed(owner[1], "/api/booking-items/", {**booking(acme_project), "resources": {"CPU": 0}}, key)
    assert bad.status_code == 400 and not IdempotencyKey.objects.exists()
    good = keyed(owner[1], "/api/booking-items/", booking(acme_project), key)
    assert good.status_code == 201 and BookingItem.objects.count() == 1


def test_a_repeat_while_the_first_is_handled_answers_409_and_a_dead_first_is_taken_over(
    owner, acme_project, settings
):
    key = str(uuid.uuid4())
    first = keyed(owner[1], "/api/projects/", {"caption": "Web"}, key)
    row = IdempotencyKey.objects.get()
    IdempotencyKey.objects.filter(pk=row.pk).update(state="processing", created_at=timezone.now())
    busy = keyed(owner[1], "/api/projects/", {"caption": "Web"}, key)
    assert busy.status_code == 409 and "still being handled" in busy.json()["detail"]
    # Its process died: past IDEMPOTENCY_PROCESSING_TIMEOUT a repeat runs the request itself.
    settings.IDEMPOTENCY_PROCESSING_TIMEOUT = 60
    IdempotencyKey.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=61))
    taken = keyed(owner[1], "/api/projects/", {"caption": "Web"}, key)
    assert taken.status_code == 400  # the project exists: the request itself ran again
    assert first.status_code == 201 and Project.objects.filter(caption="Web").count() == 1


def test_a_signal_sent_twice_with_a_key_is_stored_once(actors, world):
    path = f"/api/operations/{world.operation.pk}/signals/"
    body = {"name": "decision", "payload": {"approved": False, "comment": "no"}}
    key = str(uuid.uuid4())
    for _ in range(2):
        answer = keyed(actors["owner"].api, path, body, key)
        assert answer.status_code == 202, answer.content
    assert Signal.objects.filter(operation=world.operation, name="decision").count() == 1


def test_a_repeated_order_answers_its_201_instead_of_409(owner):
    key = str(uuid.uuid4())
    body = ORDER.format(env="keyed-env")
    first = keyed(owner[1], "/api/orders/", body, key, fmt="yaml")
    assert first.status_code == 201, first.content
    again = keyed(owner[1], "/api/orders/", body, key, fmt="yaml")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert owner[1].generic("POST", "/api/orders/", body, content_type="application/yaml").status_code == 409
    assert Order.objects.count() == 1


def test_beat_forgets_keys_past_their_time_and_a_forgotten_key_is_new_again(owner, settings):
    key = str(uuid.uuid4())
    assert keyed(owner[1], "/api/projects/", {"caption": "Web"}, key).status_code == 201
    claim = idempotency_key_claim(scope="customer:0", key="other", fingerprint="f")
    IdempotencyKey.objects.exclude(pk=claim.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert idempotency_keys_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["other"]
    again = keyed(owner[1], "/api/projects/", {"caption": "Web"}, key)
    assert again.status_code == 400 and "Idempotent-Replayed" not in again  # it ran: the project exists
    assert "idempotency-keys-purge" in settings.CELERY_BEAT_SCHEDULE


def test_the_schema_documents_the_header_on_every_post(owner):
    schema = owner[1].get("/api/schema/", HTTP_ACCEPT="application/json").json()
    posts = [(path, ops["post"]) for path, ops in schema["paths"].items() if "post" in ops]
    assert len(posts) >= 10
    for path, operation in posts:
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        assert [h["name"] for h in headers] == ["Idempotency-Key"], path
        assert not headers[0].get("required") and headers[0]["schema"]["maxLength"] == 255
    assert not any(
        p["in"] == "header"
        for ops in schema["paths"].values()
        for p in ops.get("get", {}).get("parameters", [])
    )
