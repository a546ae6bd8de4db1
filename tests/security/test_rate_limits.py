"""Rate limits per customer on booking items and on build-and-launch: 429 with Retry-After and a
message that says the limit, counted for the customer whoever of its users asks, API and wizards
together (`provisioning.ratelimit.rate_limit_consume`), in Redis, shared by every web process."""

from __future__ import annotations

import time

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured

from bookings.models import BookingItem
from images.models import ImageBuild, Reservation
from provisioning.env import env_rate
from provisioning.models import Customer
from provisioning.ratelimit import RateLimited, rate_limit_consume
from tests.images.conftest import launch_body

pytestmark = pytest.mark.django_db


def book(actor, world, caption: str):
    body = {"project": world.project.pk, "type": "PRIVATE_CLOUD", "caption": caption}
    return actor.api.post(
        "/api/booking-items/", {**body, "resources": {"CPU": 1, "RAM": 1, "SSD": 25}}, format="json"
    )


def test_it_counts_booking_items_per_customer_whoever_of_its_users_asks(actors, world, settings):
    settings.RATE_LIMIT_BOOKING_ITEMS = (3, 60)
    owner, member, other = actors["owner"], actors["member"], actors["other"]
    assert [book(a, world, f"b{i}").status_code for i, a in enumerate([owner, member, owner])] == [201] * 3
    before = BookingItem.objects.count()
    answer = book(member, world, "one too many")
    assert answer.status_code == 429
    assert 1 <= int(answer["Retry-After"]) <= 60
    assert answer.json()["detail"] == (
        f"Too many booking items for Acme: at most 3 per minute per customer. "
        f"Try again in {answer['Retry-After']} seconds."
    )
    assert BookingItem.objects.count() == before  # nothing stored
    # Reads are not limited, and another customer has its own count.
    assert member.api.get("/api/booking-items/").status_code == 200
    project = other.api.post("/api/projects/", {"caption": "Globex shop"}, format="json").json()
    body = {"project": project["id"], "type": "PRIVATE_CLOUD", "caption": "g", "resources": {"SSD": 25}}
    assert (
        other.api.post(
            "/api/booking-items/", {**body, "resources": {"CPU": 1, "RAM": 1, "SSD": 25}}, format="json"
        ).status_code
        == 201
    )


def test_it_limits_build_and_launch_per_customer(actors, world, settings):
    settings.RATE_LIMIT_IMAGE_BUILDS = (2, 3600)
    owner, member = actors["owner"], actors["member"]
    body = launch_body(name="api", regions=("local-1",), amount=1)
    assert owner.api.post("/api/image-builds/", body, format="json").status_code == 201
    assert member.api.post("/api/image-builds/", body, format="json").status_code == 201
    builds, reservations = ImageBuild.objects.count(), Reservation.objects.count()
    answer = owner.api.post("/api/image-builds/", body, format="json")
    assert answer.status_code == 429
    assert 1 <= int(answer["Retry-After"]) <= 3600
    assert "at most 2 per hour per customer" in answer.json()["detail"]
    assert (ImageBuild.objects.count(), Reservation.objects.count()) == (builds, reservations)


def test_it_admits_again_once_the_period_has_passed(actors, world, settings):
    settings.RATE_LIMIT_BOOKING_ITEMS = (1, 2)
    owner = actors["owner"]
    # Start at the beginning of a period, so that the second request falls in the same one.
    time.sleep(2 - time.time() % 2)
    assert book(owner, world, "first").status_code == 201
    refused = book(owner, world, "second")
    assert refused.status_code == 429
    time.sleep(int(refused["Retry-After"]))
    assert book(owner, world, "third").status_code == 201


def test_the_wizards_share_the_count_with_the_api(actors, world, settings):
    """A wizard calls rate_limit_consume before the service; its submissions count for the API too."""
    settings.RATE_LIMIT_BOOKING_ITEMS = (2, 60)
    acme = Customer.objects.get(name="Acme")
    rate_limit_consume(customer=acme, action="booking_items")
    assert book(actors["owner"], world, "api").status_code == 201
    with pytest.raises(RateLimited) as refused:
        rate_limit_consume(customer=acme, action="booking_items")
    assert refused.value.code == 429 and 1 <= refused.value.retry_after <= 60
    assert book(actors["member"], world, "api again").status_code == 429


def test_it_can_be_switched_off(actors, world, settings):
    settings.RATE_LIMIT_BOOKING_ITEMS = None
    assert {book(actors["owner"], world, f"b{i}").status_code for i in range(5)} == {201}


def test_the_counters_live_in_redis_when_it_is_configured():
    assert isinstance(caches["default"], RedisCache)


@pytest.mark.parametrize(
    "raw, rate",
    [
        ("30/minute", (30, 60)),
        ("100/h", (100, 3600)),
        ("5/10s", (5, 10)),
        ("2/day", (2, 86400)),
        ("off", None),
        ("0/m", None),
    ],
)
def test_rates_are_read_strictly_from_the_environment(monkeypatch, raw, rate):
    monkeypatch.setenv("RATE_LIMIT_TEST", raw)
    assert env_rate("RATE_LIMIT_TEST", "1/minute") == rate


@pytest.mark.parametrize("raw", ["30", "30/fortnight", "many/minute", "30/0s", "-1/m", "30 per minute"])
def test_a_typo_in_a_rate_stops_the_service_with_a_message(monkeypatch, raw):
    monkeypatch.setenv("RATE_LIMIT_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_TEST"):
        env_rate("RATE_LIMIT_TEST", "1/minute")


def test_an_unreachable_cache_lets_the_booking_through_and_says_so_in_the_log(
    actors, world, settings, caplog
):
    settings.RATE_LIMIT_BOOKING_ITEMS = (1, 60)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    answers = [book(actors["owner"], world, f"during the outage {i}").status_code for i in range(2)]
    assert answers == [201, 201]
    assert "the cache is unreachable" in caplog.text
