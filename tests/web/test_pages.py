"""The server-rendered pages through Django's test client: who may see what, form errors next to
their fields, CSRF, and the wizard's steps down to the booking."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from bookings.models import BookingItem, BookingItemCreatedEvent
from tests.web.conftest import make_failed_operation, make_item

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def error_of(html: str, field_id: str) -> str:
    """The error list rendered right after the field with this id (empty when none)."""
    match = re.search(rf'<ul class="errorlist" id="{field_id}_errors">(.*?)</ul>', html, re.S)
    return re.sub(r"<[^>]+>", " ", match.group(1)).strip() if match else ""


def walk_wizard(client: Client, project, **resources) -> None:
    answer = client.post(
        "/bookings/new/type/", {"type": "PRIVATE_CLOUD", "caption": "cloud", "project": project.pk}
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    answer = client.post("/bookings/new/resources/", resources or {"CPU": 4, "RAM": 8, "SSD": 100})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    answer = client.post("/bookings/new/asset/", {})  # "create the hosting asset now" unticked
    assert answer.status_code == 302, answer.content.decode()[:2000]


@pytest.mark.parametrize(
    "path",
    ["/", "/bookings/new/", "/bookings/new/type/", "/bookings/items/1/", "/bookings/items/1/status/"],
)
def test_it_sends_a_visitor_who_is_not_logged_in_to_the_login_page(path):
    answer = Client().get(path)
    assert answer.status_code == 302
    assert answer["Location"].startswith("/login/?next=")


def test_it_answers_404_for_another_customers_booking_item_and_operation(owner, outsider, project):
    item = make_item(project)
    op = make_failed_operation(project)
    client = logged_in(outsider)
    for path in (
        f"/bookings/items/{item.pk}/",
        f"/bookings/items/{item.pk}/status/",
        f"/operations/{op.pk}/",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/bookings/items/{item.pk}/record-added/").status_code == 404
    assert logged_in(owner).get(f"/bookings/items/{item.pk}/").status_code == 200


def test_it_offers_only_the_users_own_projects_in_the_wizard(owner, outsider, project):
    answer = logged_in(outsider).post(
        "/bookings/new/type/", {"type": "PRIVATE_CLOUD", "caption": "cloud", "project": project.pk}
    )
    assert answer.status_code == 400
    assert "Select a valid choice" in error_of(answer.content.decode(), "id_project")


def test_it_shows_each_resource_error_next_to_its_field(owner, project):
    client = logged_in(owner)
    client.post("/bookings/new/type/", {"type": "PRIVATE_CLOUD", "caption": "cloud", "project": project.pk})
    answer = client.post("/bookings/new/resources/", {"CPU": 0, "RAM": "", "SSD": 10})
    html = answer.content.decode()
    assert answer.status_code == 400
    assert "greater than or equal to 1" in error_of(html, "id_CPU")
    assert "required" in error_of(html, "id_RAM")
    assert "greater than or equal to 25" in error_of(html, "id_SSD")
    assert error_of(html, "id_HDD") == ""
    assert '<label for="id_CPU">' in html  # every field labelled


def test_it_shows_the_services_errors_next_to_the_field_they_concern(owner, project):
    client = logged_in(owner)
    client.post("/bookings/new/type/", {"type": "DOMAIN_SETUP", "caption": "shop", "project": project.pk})
    answer = client.post("/bookings/new/resources/", {"domainName": "not a domain"})
    assert answer.status_code == 400
    assert error_of(answer.content.decode(), "id_domainName")
    answer = client.post("/bookings/new/resources/", {"domainName": "shop.example.org"})
    assert answer.status_code == 302
    answer = client.post("/bookings/new/asset/", {"create": "on", "unix_user": "abc00-web"})
    assert answer.status_code == 400
    assert "required" in error_of(answer.content.decode(), "id_webspace")


def test_it_books_through_the_wizard_and_shows_the_item(owner, project):
    client = logged_in(owner)
    walk_wizard(client, project)
    review = client.get("/bookings/new/review/")
    assert review.status_code == 200 and "Review and book" in review.content.decode()
    answer = client.post("/bookings/new/review/")
    item = BookingItem.objects.get(caption="cloud")
    assert answer.status_code == 302 and answer["Location"] == f"/bookings/items/{item.pk}/"
    assert item.resources == {"CPU": 4, "RAM": 8, "SSD": 100}
    assert not BookingItemCreatedEvent.objects.exists()  # no asset asked for
    page = client.get(answer["Location"]).content.decode()
    assert "No hosting asset was asked for" in page
    assert client.get("/bookings/new/review/").status_code == 302  # the wizard starts anew


def test_it_creates_a_new_project_from_the_first_step(owner):
    client = logged_in(owner)
    answer = client.post(
        "/bookings/new/type/", {"type": "PRIVATE_CLOUD", "caption": "c", "new_project": "Web"}
    )
    assert answer.status_code == 302
    assert owner.memberships.get().customer.projects.get().caption == "Web"


def test_it_sends_a_later_step_back_to_the_first_missing_one(owner):
    answer = logged_in(owner).get("/bookings/new/review/")
    assert answer.status_code == 302 and answer["Location"] == "/bookings/new/type/"


def test_it_refuses_a_post_without_the_csrf_token(owner, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    answer = client.post(
        "/bookings/new/type/", {"type": "PRIVATE_CLOUD", "caption": "cloud", "project": project.pk}
    )
    assert answer.status_code == 403
    item = make_item(project, type="DOMAIN_SETUP", resources={"domainName": "example.org"})
    assert client.post(f"/bookings/items/{item.pk}/record-added/").status_code == 403
    form = client.get("/bookings/new/type/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in form


def test_it_lists_the_customers_booking_items_newest_first_and_paginated(owner, outsider, project):
    for n in range(12):
        make_item(project, caption=f"cloud {n:02}")
    make_item(outsider.memberships.get().customer.projects.create(caption="Theirs"), caption="not mine")
    client = logged_in(owner)
    first = client.get("/").content.decode()
    captions = re.findall(r"Private cloud: (cloud \d\d)", first)
    assert captions == [f"cloud {n:02}" for n in range(11, 1, -1)]
    assert "not mine" not in first
    assert "page 1 of 2" in first
    second = client.get("/?items=2").content.decode()
    assert re.findall(r"Private cloud: (cloud \d\d)", second) == ["cloud 01", "cloud 00"]
    fragment = client.get("/?fragment=1").content.decode()
    assert fragment.lstrip().startswith("{#") is False and 'id="home-lists"' in fragment


def test_it_shows_an_operation_with_its_timeline_and_the_error_of_the_failed_attempt(
    owner, hostmaster, project
):
    op = make_failed_operation(project, error="The webspace abc00 exists already.")
    page = logged_in(owner).get(f"/operations/{op.pk}/").content.decode()
    assert "<svg" in page and "<title>validate attempt 1: Failed - The webspace abc00 exists already." in page
    assert "Errors of failed attempts" in page and "Traceback" not in page  # the detail is for hostmasters
    assert "Traceback" in logged_in(hostmaster).get(f"/operations/{op.pk}/").content.decode()


def test_it_shows_hostmasters_what_waits_for_them_on_the_admins_first_page(hostmaster, project):
    op = make_failed_operation(project, error="The provider said no.")
    item = make_item(project, caption="web", type="MANAGED_WEBSPACE", resources={"SSD": 10})
    BookingItemCreatedEvent.objects.create(
        booking_item=item,
        asset_data={"identifier": "abc00"},
        status="waiting",
        waiting_for="hostmaster",
        status_message="waiting for a hostmaster to assign a target server",
    )
    page = logged_in(hostmaster).get("/admin/").content.decode()
    waiting = page[page.index("Waiting for you") : page.index("Failed operations")]
    assert "Managed webspace: web" in waiting and "assign a target server" in waiting
    failed = page[page.index("Failed operations") :]
    assert f"/operations/{op.pk}/" in failed and "The provider said no." in failed
