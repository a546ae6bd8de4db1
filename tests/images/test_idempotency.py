"""A client that repeats a build-and-launch (a timeout, a retry) with its Idempotency-Key gets one
build and one set of instances: PostgreSQL, Redis, a real worker and the local provider's processes."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from images.models import ImageBuild, Reservation
from provisioning.providers.local import LocalProvider
from tests.images.conftest import launch_body
from tests.images.test_build_launch import finished, live_local_instances

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("real_services")]


def post(client, body: dict, key: str | None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/image-builds/", body, format="json", **headers)


def at_the_same_moment(client, body: dict, key: str, threads: int = 2) -> list:
    barrier = threading.Barrier(threads)
    answers: list = [None] * threads

    def send(index: int) -> None:
        try:
            barrier.wait()
            answers[index] = post(client, body, key)
        finally:
            connection.close()  # this thread's own connection

    workers = [threading.Thread(target=send, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return answers


def test_two_identical_posts_at_the_same_moment_build_and_launch_once_and_a_replay_answers_the_201(
    celery_worker, owner
):
    body = launch_body(amount=2)
    key = str(uuid.uuid4())
    answers = at_the_same_moment(owner[1], body, key)
    statuses = sorted(a.status_code for a in answers)
    assert statuses in ([201, 409], [201, 201]), [a.content for a in answers]
    first = next(a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a)
    busy = [a for a in answers if a.status_code == 409]
    for answer in busy:
        assert "still being handled" in answer.json()["detail"]

    reservation = finished(owner[1], first.json()["reservation"]["id"])
    assert reservation["state"] == "succeeded", reservation
    assert ImageBuild.objects.count() == 1 and Reservation.objects.count() == 1
    assert len(live_local_instances(reservation["id"])) == 2
    assert len(LocalProvider(latency=0).live_processes()) == 2  # counted at the provider: no others

    again = post(owner[1], body, key)  # after the saga finished: the first answer, word for word
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert ImageBuild.objects.count() == 1 and Reservation.objects.count() == 1
    assert len(LocalProvider(latency=0).live_processes()) == 2


def test_the_same_key_with_another_body_answers_422_and_starts_nothing(celery_worker, owner):
    key = str(uuid.uuid4())
    first = post(owner[1], launch_body(regions=("local-1",), amount=1), key)
    assert first.status_code == 201, first.json()
    other = post(owner[1], launch_body(name="other", regions=("local-1",), amount=1), key)
    assert other.status_code == 422
    assert "came with another request" in other.json()["detail"]
    assert Reservation.objects.count() == 1
    finished(owner[1], first.json()["reservation"]["id"])


def test_without_a_key_every_post_builds_and_launches_again(celery_worker, owner):
    body = launch_body(regions=("local-1",), amount=1)
    first, second = post(owner[1], body, None), post(owner[1], body, None)
    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second
    assert first.json()["reservation"]["id"] != second.json()["reservation"]["id"]
    assert Reservation.objects.count() == 2
    for answer in (first, second):
        assert finished(owner[1], answer.json()["reservation"]["id"])["state"] == "succeeded"
