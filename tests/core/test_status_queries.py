"""Status endpoints cost a constant number of queries, however many steps, attempts and instances."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from images.models import ReservationInstance
from images.services import image_build_launch
from provisioning.models import Operation, StepRun
from provisioning.orders.models import Order
from provisioning.orders.services import environment_configure
from provisioning.saga import runner
from tests import sagas  # noqa: F401  (registers the test sagas)
from tests.providers.conftest import MANIFEST, ssh_public_key

pytestmark = pytest.mark.django_db


def add_attempts(operation: Operation, count: int) -> None:
    start = timezone.now()
    StepRun.objects.bulk_create(
        StepRun(
            operation=operation,
            step=f"s{1 + i % 5}",
            position=i % 5,
            attempt=1 + i // 5,
            started_at=start + timedelta(seconds=i),
            finished_at=start + timedelta(seconds=i + 1),
            outcome="retry",
            message=f"attempt {i}",
        )
        for i in range(count)
    )


def queries(client: APIClient, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        answer = client.get(url)
    assert answer.status_code == 200, answer.content
    return len(captured)


def test_an_operation_costs_the_same_queries_with_one_or_forty_attempts(owner):
    user, client = owner
    customer = user.memberships.get().customer
    with transaction.atomic():
        few = runner.start(kind="test_five", customer=customer)
        many = runner.start(kind="test_five", customer=customer)
    add_attempts(few, 1)
    add_attempts(many, 40)
    assert queries(client, f"/api/operations/{few.pk}/") == queries(client, f"/api/operations/{many.pk}/")


def test_a_reservation_costs_the_same_queries_with_one_or_twelve_instances(owner):
    user, client = owner
    customer = user.memberships.get().customer
    launches = [
        image_build_launch(
            customer=customer,
            name=f"web{n}",
            manifest={**MANIFEST, "target": {"provider": "local", "regions": ["local-1"]}},
            launch={"amount": n, "public_key": ssh_public_key()},
        )
        for n in (1, 12)
    ]
    for launch in launches:
        ReservationInstance.objects.bulk_create(
            ReservationInstance(
                reservation=launch.reservation,
                region="local-1",
                instance_id=f"i-{launch.reservation.pk}-{i}",
                state="running",
                detail={"private_ip": "127.0.0.1", "port": 20000 + i},
            )
            for i in range(launch.reservation.amount)
        )
        add_attempts(launch.operation, launch.reservation.amount * 3)
    one, twelve = (f"/api/reservations/{launch.reservation.pk}/" for launch in launches)
    assert queries(client, one) == queries(client, twelve)
    builds = (f"/api/image-builds/{launch.build.pk}/" for launch in launches)
    assert queries(client, next(builds)) == queries(client, next(builds))


def order(name: str, services: int) -> str:
    listed = "".join(
        f"    - id: '{i}'\n      path: /s{i}\n"
        f"      repository: {{url: 'https://git.example.com/shop/s{i}', version: v1}}\n      type: python\n"
        for i in range(services)
    )
    return (
        f"action: update\nenvironment_id: {name}\n"
        f"api:\n  domains: [api.{name}.example.com]\n  services:\n{listed}"
    )


def test_an_order_costs_the_same_queries_with_one_or_six_services(owner):
    _, client = owner
    urls = []
    for name, services in (("shop-a", 1), ("shop-b", 6)):
        answer = client.generic(
            "POST", "/api/orders/", order(name, services), content_type="application/yaml"
        )
        assert answer.status_code == 201, answer.content
        environment_configure(order=Order.objects.get(pk=answer.json()["id"]))  # its first task
        urls.append(f"/api/orders/{answer.json()['id']}/")
    assert len(client.get(urls[1]).json()["services"]) == 6
    assert queries(client, urls[0]) == queries(client, urls[1])
