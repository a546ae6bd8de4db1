"""The wizards keep the API's limits: the rate of booking items and of builds and launches per customer
(429 with Retry-After and the message, nothing stored), and names and captions on one line."""

from __future__ import annotations

import pytest

from bookings.models import BookingItem, Project
from images.models import ImageBuild, Reservation
from provisioning.applications.models import ApplicationRequest
from provisioning.models import Customer
from provisioning.ratelimit import rate_limit_consume, rate_limit_reset
from tests.web.test_application_pages import form as request_form
from tests.web.test_images_pages import image_post, launch_post, step, target_post, through
from tests.web.test_pages import error_of, logged_in, walk_wizard

pytestmark = pytest.mark.django_db

ONE_LINE = "must be one line of text: no line breaks or control characters."


@pytest.fixture
def limits(settings):
    """`limits(action, count, seconds)`: a low rate for the test, counted from zero for every customer."""

    def set_rate(action: str, count: int, seconds: int) -> None:
        setattr(settings, f"RATE_LIMIT_{action.upper()}", (count, seconds))
        for customer in Customer.objects.all():
            rate_limit_reset(customer=customer, action=action)

    return set_rate


def test_the_booking_wizard_answers_429_past_the_customers_rate_and_stores_nothing(owner, project, limits):
    limits("booking_items", 1, 60)
    client = logged_in(owner)
    walk_wizard(client, project)
    assert client.post("/bookings/new/review/").status_code == 302  # the one booking of this minute
    walk_wizard(client, project)
    before = BookingItem.objects.count()

    answer = client.post("/bookings/new/review/")

    assert answer.status_code == 429
    assert 1 <= int(answer["Retry-After"]) <= 60
    assert (
        f"Too many booking items for Acme: at most 1 per minute per customer. "
        f"Try again in {answer['Retry-After']} seconds."
    ) in answer.content.decode()
    assert BookingItem.objects.count() == before
    assert client.get("/bookings/new/review/").status_code == 200  # what was entered is kept


def test_the_build_and_launch_wizard_answers_429_past_the_customers_rate_and_stores_nothing(
    requester, acme, limits
):
    limits("image_builds", 1, 3600)
    rate_limit_consume(customer=acme, action="image_builds")  # the API's launch of this hour
    client = logged_in(requester[0])
    through(client, ("image", image_post()), ("target", target_post()), ("launch", launch_post()))

    answer = client.post(step("review"))

    assert answer.status_code == 429
    assert 1 <= int(answer["Retry-After"]) <= 3600
    assert (
        "Too many builds and launches for Acme: at most 1 per hour per customer." in answer.content.decode()
    )
    assert (ImageBuild.objects.count(), Reservation.objects.count()) == (0, 0)
    assert client.get(step("review")).status_code == 200  # what was entered is kept


def test_another_customer_has_its_own_count_in_the_wizard(owner, outsider, project, limits):
    limits("booking_items", 1, 60)
    rate_limit_consume(customer=project.customer, action="booking_items")
    theirs = Project.objects.create(customer=outsider.memberships.get().customer, caption="Globex")
    client = logged_in(outsider)
    walk_wizard(client, theirs)
    assert client.post("/bookings/new/review/").status_code == 302


@pytest.mark.parametrize("value", ["cloud\r\nX-Injected: 1", "cloud\nsecond line", "tab\tand\x00nul"])
def test_a_booking_caption_or_project_name_of_more_than_one_line_is_refused(owner, project, value):
    client = logged_in(owner)
    answer = client.post(
        "/bookings/new/type/", {"type": "PRIVATE_CLOUD", "caption": value, "project": project.pk}
    )
    assert answer.status_code == 400
    assert ONE_LINE in error_of(answer.content.decode(), "id_caption")
    answer = client.post(
        "/bookings/new/type/", {"type": "PRIVATE_CLOUD", "caption": "c", "new_project": value}
    )
    assert answer.status_code == 400
    assert ONE_LINE in error_of(answer.content.decode(), "id_new_project")
    assert Project.objects.count() == 1


def test_an_asset_caption_of_more_than_one_line_is_refused(owner, project):
    client = logged_in(owner)
    walk_wizard(client, project)
    answer = client.post("/bookings/new/asset/", {"create": "on", "caption": "pool\r\nX", "notes": "n"})
    assert answer.status_code == 400
    assert ONE_LINE in error_of(answer.content.decode(), "id_caption")


def test_an_image_or_user_name_of_more_than_one_line_is_refused(requester):
    client = logged_in(requester[0])
    answer = client.post(step("image"), image_post(name="web\r\nX-Injected: 1"))
    assert answer.status_code == 400
    assert answer.context["forms"].form.errors["name"] == [ONE_LINE]
    users = [{"name": "ops\nroot", "ssh_key": "", "groups": ""}]
    answer = client.post(step("image"), image_post(users=users))
    assert answer.status_code == 400
    assert ONE_LINE in answer.context["forms"].users.forms[0].errors["name"]


def test_an_application_name_of_more_than_one_line_is_refused(team, requester):
    answer = logged_in(requester[0]).post(
        "/applications/requests/new/", request_form(application="shop\r\nx")
    )
    assert answer.status_code == 400
    assert ONE_LINE in answer.context["form"].errors["application"]
    assert not ApplicationRequest.objects.exists()
