"""Bookings posted at the same time under one parent: together they never take more than it has."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from bookings.models import BookingItem
from provisioning.services import api_user_create_or_update
from tests.fixtures.actors import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


def test_two_bookings_racing_for_the_last_share_of_a_parent_get_one_201_and_one_400(project):
    """Both requests are held at the same point (the parent's row is locked from outside), then let go
    together: each alone would fit, both together would not."""
    cloud = BookingItem.objects.create(
        project=project, type="PRIVATE_CLOUD", caption="Pool", resources={"CPU": 8, "RAM": 64, "SSD": 2000}
    )
    _, token = api_user_create_or_update(username="olivia", customer_name="Acme")

    def book(n: int) -> int:
        try:
            answer = client_for(token).post(
                "/api/booking-items/",
                {
                    "parent_item": cloud.pk,
                    "type": "CLOUD_SERVER",
                    "caption": f"server {n}",
                    "resources": {"CPU": 5, "RAM": 1, "SSD": 25},
                },
                format="json",
            )
            return answer.status_code
        finally:
            connection.close()  # the thread's own connection

    holder = connections.create_connection("default")
    holder.set_autocommit(False)
    with holder.cursor() as cursor:
        cursor.execute("SELECT id FROM bookings_bookingitem WHERE id = %s FOR UPDATE", [cloud.pk])
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = [pool.submit(book, n) for n in range(2)]
        deadline = time.monotonic() + 10
        while waiting_on_locks() < 2 and not all(a.done() for a in answers) and time.monotonic() < deadline:
            time.sleep(0.05)
        holder.rollback()
        holder.close()
        statuses = sorted(a.result() for a in answers)

    assert statuses == [201, 400]
    assert BookingItem.objects.filter(parent_item=cloud).count() == 1
