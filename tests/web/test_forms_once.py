"""A form sent twice does its work once: each render carries a key (`form_key`), and a second "Book",
"Build and launch" or "Request" with it lands on the first result (Django's test client)."""

from __future__ import annotations

import re

import pytest

from bookings.models import BookingItem
from images.models import Reservation
from provisioning.applications.models import ApplicationRequest
from provisioning.services import idempotency_key_claim, idempotency_scope
from tests.web.test_application_pages import as_user
from tests.web.test_application_pages import form as request_form
from tests.web.test_images_pages import image_post, launch_post, step, target_post, through
from tests.web.test_pages import logged_in, walk_wizard

pytestmark = pytest.mark.django_db


def key_of(page) -> str:
    match = re.search(r'name="form_key" value="([0-9a-f]{32})"', page.content.decode())
    assert match, "the form carries no key"
    return match.group(1)


def test_a_double_submitted_booking_books_once(owner, project):
    client = logged_in(owner)
    walk_wizard(client, project)
    key = key_of(client.get("/bookings/new/review/"))
    first = client.post("/bookings/new/review/", {"form_key": key})
    again = client.post("/bookings/new/review/", {"form_key": key})  # the second click
    item = BookingItem.objects.get()
    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"] == f"/bookings/items/{item.pk}/"
    walk_wizard(client, project)  # a new booking: a new render, a new key, a second item
    assert key_of(client.get("/bookings/new/review/")) != key


def test_a_booking_sent_while_the_first_is_still_handled_waits_then_says_so(owner, project, monkeypatch):
    monkeypatch.setattr("provisioning.submit_once.WAIT_FOR_FIRST", 0.3)
    client = logged_in(owner)
    walk_wizard(client, project)
    key = key_of(client.get("/bookings/new/review/"))
    idempotency_key_claim(
        scope=idempotency_scope(owner), key=key, fingerprint=_form_fingerprint("/bookings/new/review/")
    )  # the first submission, still running
    answer = client.post("/bookings/new/review/", {"form_key": key})
    assert answer.status_code == 409
    assert "sent twice" in answer.content.decode()
    assert not BookingItem.objects.exists()


def _form_fingerprint(path: str) -> str:
    from provisioning.services import idempotency_fingerprint

    return idempotency_fingerprint("FORM", path)


def test_a_double_submitted_build_and_launch_launches_once(requester, client, acme):
    mia = as_user(client, requester[0])
    through(mia, ("image", image_post()), ("target", target_post()), ("launch", launch_post()))
    key = key_of(mia.get(step("review")))
    first = mia.post(step("review"), {"form_key": key})
    again = mia.post(step("review"), {"form_key": key})
    reservation = Reservation.objects.get(customer=acme)
    assert first["Location"] == again["Location"] == f"/reservations/{reservation.pk}/"


def test_a_double_submitted_application_request_is_requested_once(team, requester, client):
    client = as_user(client, requester[0])
    key = key_of(client.get("/applications/requests/new/"))
    first = client.post("/applications/requests/new/", {**request_form(), "form_key": key})
    again = client.post("/applications/requests/new/", {**request_form(), "form_key": key})
    created = ApplicationRequest.objects.get()
    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"] == f"/applications/requests/{created.pk}/"
