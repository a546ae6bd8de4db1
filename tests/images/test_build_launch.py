"""Build and launch end to end: PostgreSQL, Redis, a real Celery worker, the local provider's real
processes and a moto server for the AWS API."""

from __future__ import annotations

import re
import socket
import time

import pytest
from django.db import transaction

from images.models import Reservation, ReservationInstance
from images.services import image_build_launch
from provisioning.models import Operation, StepRun
from provisioning.providers import InstanceState, get_provider
from provisioning.providers.base import TAG_CUSTOMER, TAG_RESERVATION, TAG_TOKEN, aws_fingerprints
from provisioning.providers.local import LocalProvider
from tests.images.conftest import (
    LISTENER,
    ensure_listener_table,
    launch_body,
    manifest,
    recorded_statuses,
    wait_until,
)
from tests.providers.conftest import health, ssh_public_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("real_services")]


def finished(client, reservation_id: int, timeout: float = 90.0) -> dict:
    def done():
        body = client.get(f"/api/reservations/{reservation_id}/").json()
        return body if body["finished_at"] else None

    return wait_until(done, timeout=timeout, what=f"reservation {reservation_id} finished")


def start(client, body: dict) -> dict:
    answer = client.post("/api/image-builds/", body, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()


def live_local_instances(reservation_id: int) -> list:
    local = LocalProvider(latency=0)
    uid = str(Reservation.objects.get(pk=reservation_id).uid)
    return [
        i
        for region in local.regions()
        for i in local.find_instances(region=region, tags={TAG_RESERVATION: uid})
        if i.state != InstanceState.STOPPED
    ]


def port_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_it_launches_three_instances_in_two_regions_that_answer_health_then_terminate_frees_them(
    celery_worker, owner
):
    key = ssh_public_key()
    body = start(owner[1], launch_body(public_key=key))
    reservation = finished(owner[1], body["reservation"]["id"])
    assert reservation["state"] == "succeeded", reservation
    assert reservation["success"] is True
    assert reservation["status"] == "Done: 3 instances launched (local-1: 2, local-2: 1)."
    assert (reservation["step"], reservation["steps"]) == (6, 6)
    build = owner[1].get(f"/api/image-builds/{body['build']['id']}/").json()
    assert build["status"] == "ready"
    assert set(build["image_ids"]) == {"local-1", "local-2"}

    instances = reservation["instances"]
    assert sorted(i["region"] for i in instances) == ["local-1", "local-1", "local-2"]
    ports = []
    for instance in instances:
        assert instance["state"] == "running"
        answer = health(instance["detail"]["port"])
        assert answer["instance_id"] == instance["instance_id"]
        assert answer["image_id"] == build["image_ids"][instance["region"]]
        assert key in answer["authorized_keys"]
        ports.append(instance["detail"]["port"])

    terminated = owner[1].post(f"/api/reservations/{reservation['id']}/terminate/")
    assert terminated.status_code == 200, terminated.json()
    assert {i["state"] for i in terminated.json()["instances"]} == {"terminated"}
    assert live_local_instances(reservation["id"]) == []
    assert all(port_closed(port) for port in ports)


def test_the_status_seen_through_the_api_passes_through_every_step_title_in_order(celery_worker, owner):
    body = start(owner[1], launch_body(amount=2))
    reservation_id = body["reservation"]["id"]
    titles = body["reservation"]["step_titles"]
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reservation = owner[1].get(f"/api/reservations/{reservation_id}/").json()
        match = re.match(r"step (\d) of 6: ([^(]+?)(?: \(|$)", reservation["status"])
        if match:
            assert int(match.group(1)) == reservation["step"]
            if not seen or seen[-1] != match.group(2):
                seen.append(match.group(2))
        if reservation["finished_at"]:
            break
        time.sleep(0.03)
    assert reservation["status"] == "Done: 2 instances launched (local-1: 1, local-2: 1).", reservation
    assert seen == titles


def test_on_aws_the_instances_exist_with_the_tags_and_the_imported_key(celery_worker, owner, aws_endpoint):
    account = (
        owner[1]
        .post(
            "/api/cloud-accounts/",
            {"provider": "aws", "name": "prod", "access_key_id": "testing", "secret_access_key": "testing"},
            format="json",
        )
        .json()
    )
    key = ssh_public_key("rsa")
    body = start(
        owner[1],
        launch_body(
            provider="aws",
            regions=("eu-west-1", "us-east-2"),
            account=account["id"],
            instance_type="t3.micro",
            public_key=key,
        ),
    )
    reservation = finished(owner[1], body["reservation"]["id"])
    assert reservation["state"] == "succeeded", reservation
    assert len(reservation["instances"]) == 3

    aws = get_provider("aws", {"access_key_id": "testing", "secret_access_key": "testing"})
    customer_id = str(owner[0].memberships.get().customer_id)
    for region, count in (("eu-west-1", 2), ("us-east-2", 1)):
        found = aws.find_instances(region=region, tags={TAG_RESERVATION: reservation["uid"]})
        assert len(found) == count
        pairs = aws.ec2(region).describe_key_pairs()["KeyPairs"]
        ours = [p for p in pairs if p["KeyFingerprint"] in aws_fingerprints(key)]
        assert len(ours) == 1
        for instance in found:
            assert instance.state == InstanceState.RUNNING
            assert instance.key_name == ours[0]["KeyName"]
            assert instance.tags[TAG_CUSTOMER] == customer_id
            assert instance.tags[TAG_TOKEN] == f"{reservation['operation']}-{region}"
            assert instance.image_id == reservation_build(reservation)["image_ids"][region]
        described = [i for i in reservation["instances"] if i["region"] == region]
        assert sorted(i["instance_id"] for i in described) == sorted(i.id for i in found)
        assert all(i["detail"]["private_ip"] for i in described)

    # A second launch with the same key reuses it instead of importing it again.
    again = start(
        owner[1],
        launch_body(
            provider="aws",
            regions=("eu-west-1",),
            account=account["id"],
            instance_type="t3.micro",
            amount=1,
            public_key=key,
        ),
    )
    assert finished(owner[1], again["reservation"]["id"])["state"] == "succeeded"
    pairs = aws.ec2("eu-west-1").describe_key_pairs()["KeyPairs"]
    assert len([p for p in pairs if p["KeyFingerprint"] in aws_fingerprints(key)]) == 1


def reservation_build(reservation: dict) -> dict:
    from images.models import ImageBuild

    build = ImageBuild.objects.get(pk=reservation["build"])
    return {"image_ids": build.image_ids}


def _assert_compensated(reservation: dict) -> None:
    assert reservation["state"] == "failed", reservation
    assert reservation["success"] is False
    assert reservation["status"].startswith("Failed at step 6 of 6 (Fetching instance descriptions)")
    assert "describe_instances failed" in reservation["error"]
    op = Operation.objects.get(pk=reservation["operation"])
    fetch_runs = StepRun.objects.filter(operation=op, step="fetch", kind="run")
    assert fetch_runs.count() == 4  # every attempt, the last one included, failed
    undone = set(StepRun.objects.filter(operation=op, kind="compensate").values_list("step", flat=True))
    assert {"reserve", "launch_0", "launch_1"} <= undone


def test_a_failure_in_fetching_descriptions_on_its_last_attempt_leaves_no_local_instance_running(
    celery_worker, owner
):
    body = start(owner[1], launch_body(inject_fault="describe_instances"))
    reservation = finished(owner[1], body["reservation"]["id"])
    _assert_compensated(reservation)
    assert live_local_instances(reservation["id"]) == []
    assert LocalProvider(latency=0).live_processes() == []
    assert set(ReservationInstance.objects.values_list("state", flat=True)) == {"terminated"}
    # The image was not one-off: it stays, ready to be launched again.
    assert owner[1].get(f"/api/image-builds/{reservation['build']}/").json()["status"] == "ready"


def test_a_failure_in_fetching_descriptions_on_aws_terminates_the_instances_and_a_one_off_image(
    celery_worker, owner, aws_endpoint
):
    account = (
        owner[1]
        .post(
            "/api/cloud-accounts/",
            {"provider": "aws", "name": "faulty", "access_key_id": "testing", "secret_access_key": "testing"},
            format="json",
        )
        .json()
    )
    body = start(
        owner[1],
        launch_body(
            provider="aws",
            regions=("ap-south-1", "ca-central-1"),
            account=account["id"],
            instance_type="t3.micro",
            inject_fault="describe_instances",
            one_off_image=True,
        ),
    )
    reservation = finished(owner[1], body["reservation"]["id"])
    _assert_compensated(reservation)
    aws = get_provider("aws", {"access_key_id": "testing", "secret_access_key": "testing"})
    image_ids = reservation_build(reservation)["image_ids"]
    for region in ("ap-south-1", "ca-central-1"):
        assert aws.find_instances(region=region, tags={TAG_RESERVATION: reservation["uid"]}) == []
        assert aws.describe_build(region=region, image_id=image_ids[region]).state == "failed"
    assert owner[1].get(f"/api/image-builds/{reservation['build']}/").json()["status"] == "deleted"


def test_a_worker_killed_during_launch_still_ends_with_exactly_the_requested_instances(celery_worker, owner):
    body = start(owner[1], launch_body(amount=3))
    reservation_id = body["reservation"]["id"]
    # Kill it once the launch has started processes (and before it has seen them all run).
    wait_until(
        lambda: live_local_instances(reservation_id), timeout=60, what="instances starting", sweep=False
    )
    assert Reservation.objects.get(pk=reservation_id).step == 5
    celery_worker.kill()
    celery_worker.start()
    reservation = finished(owner[1], reservation_id)
    assert reservation["state"] == "succeeded", reservation
    assert len(reservation["instances"]) == 3
    assert len(live_local_instances(reservation_id)) == 3
    op = Operation.objects.get(pk=reservation["operation"])
    assert StepRun.objects.filter(operation=op, step__startswith="launch_", outcome="lost").exists()
    for instance in reservation["instances"]:
        assert health(instance["detail"]["port"])["instance_id"] == instance["instance_id"]


def test_another_app_is_told_of_every_status_change_through_its_listener(celery_worker, owner):
    ensure_listener_table()
    customer = owner[0].memberships.get().customer
    with transaction.atomic():
        launched = image_build_launch(
            customer=customer,
            name="for-event-7",
            manifest=manifest(regions=("local-3",)),
            launch={"amount": 1},
            status_listener=LISTENER,
            listener_key="event-7",
        )
    wait_until(lambda: Reservation.objects.get(pk=launched.reservation.pk).finished_at, what="the launch")
    statuses = recorded_statuses("event-7")
    assert statuses[0] == ("pending", "step 1 of 6: Building the image")
    assert statuses[-1] == ("succeeded", "Done: 1 instances launched (local-3: 1).")
    steps_seen = [int(m.group(1)) for _, s in statuses if (m := re.match(r"step (\d) of 6", s))]
    assert steps_seen == sorted(steps_seen) and set(steps_seen) == {1, 2, 3, 4, 5, 6}


def test_a_build_not_ready_in_time_times_out_and_its_unfinished_image_is_removed(
    celery_worker, owner, settings
):
    settings.IMAGES_BUILD_TIMEOUT = 0.1  # a local build takes 1.5 s here
    body = start(owner[1], launch_body())
    reservation = finished(owner[1], body["reservation"]["id"])
    assert reservation["state"] == "timed_out", reservation
    assert reservation["success"] is False
    assert reservation["status"].startswith("Timed out at step 2 of 6 (Waiting for the image to be ready)")
    build = owner[1].get(f"/api/image-builds/{reservation['build']}/").json()
    assert build["status"] == "failed"
    local = LocalProvider(latency=0)
    for region, image_id in build["image_ids"].items():
        assert not local.image_exists(region=region, image_id=image_id)
    assert reservation["instances"] == []


def test_a_launch_not_running_in_time_times_out_and_terminates_what_it_started(
    celery_worker, owner, settings
):
    settings.IMAGES_LAUNCH_TIMEOUT = 0.3  # a local instance boots in 0.8 s here
    body = start(owner[1], launch_body())
    reservation = finished(owner[1], body["reservation"]["id"])
    assert reservation["state"] == "timed_out", reservation
    assert reservation["status"].startswith("Timed out at step 5 of 6 (Launching instances)")
    assert len(reservation["instances"]) == 3  # they were started ...
    assert {i["state"] for i in reservation["instances"]} == {"terminated"}  # ... and terminated
    assert live_local_instances(reservation["id"]) == []
    assert LocalProvider(latency=0).live_processes() == []
