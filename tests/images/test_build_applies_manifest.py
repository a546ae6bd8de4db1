"""A build applies its manifest, end to end through the API and a real worker: on `local` the
instance carries the manifest's files and keys; on the moto server the build runs on one builder
instance that is stopped and terminated and leaves one available AMI, also when the worker is
SIGKILLed in the middle, and a build that fails or times out leaves nothing behind.

Moto boots nothing: MotoBuilders (tests/fixtures/aws.py) tags a running builder as finished, as the
provider does when it reads the builder's final message on its console; a build named `stuck...` is
left alone, and the test decides what its builder does."""

from __future__ import annotations

import hashlib
import time

import pytest

from images.models import ImageBuild, Reservation
from provisioning.models import Operation
from provisioning.providers import get_provider
from provisioning.providers.aws_build import TAG_FINISHED
from provisioning.providers.base import TAG_BUILD
from tests.images.conftest import launch_body, wait_until
from tests.images.test_build_launch import finished, start
from tests.providers.conftest import MANIFEST, health, ssh_public_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("real_services")]

AWS = {"access_key_id": "testing", "secret_access_key": "testing"}


def aws_account(client) -> int:
    body = {"provider": "aws", "name": "builds", **AWS}
    return client.post("/api/cloud-accounts/", body, format="json").json()["id"]


def build_ref(reservation: dict) -> str:
    return ImageBuild.objects.get(pk=reservation["build"]).build_ref


def left_at_aws(region: str, ref: str) -> dict:
    """What of the build exists at the provider: builders by state, AMIs, snapshots."""
    ec2 = get_provider("aws", AWS).ec2(region)
    tag = [{"Name": f"tag:{TAG_BUILD}", "Values": [ref]}]
    reply = ec2.describe_instances(Filters=tag)
    images = ec2.describe_images(Owners=["self"], Filters=tag)["Images"]
    image_ids = [i["ImageId"] for i in images]
    snapshots = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return {
        "builders": sorted(i["State"]["Name"] for r in reply["Reservations"] for i in r["Instances"]),
        "builder_ids": [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]],
        "images": [(i["ImageId"], i["State"]) for i in images],
        "snapshots": [
            s["SnapshotId"]
            for s in snapshots
            if any(a in s.get("Description", "") for a in image_ids)
            or {t["Key"]: t["Value"] for t in s.get("Tags", [])}.get(TAG_BUILD) == ref
        ],
    }


def gone(states: list[str]) -> bool:
    return all(s in ("terminated", "shutting-down") for s in states)


def test_a_local_instance_answers_health_with_the_manifests_files_and_keys(celery_worker, owner):
    key = ssh_public_key()
    files = [
        {"path": "/etc/motd", "content": "hello", "mode": "0644"},
        {"path": "/srv/app/config.yml", "content": "debug: false\n# not: yaml: for us\n", "mode": "0600"},
    ]
    body = launch_body(regions=("local-1",), amount=1)
    body["manifest"]["customizations"] = {
        **MANIFEST["customizations"],
        "users": [{"name": "deploy", "ssh_key": key, "groups": ["adm"]}],
        "files": files,
    }
    reservation = finished(owner[1], start(owner[1], body)["reservation"]["id"])
    assert reservation["state"] == "succeeded", reservation
    [instance] = reservation["instances"]
    answer = health(instance["detail"]["port"])
    assert answer["image_id"] == instance["detail"]["image_id"]
    assert answer["image_id"] == ImageBuild.objects.get(pk=reservation["build"]).image_ids["local-1"]
    carried = {f["path"]: (f["sha256"], f["mode"]) for f in answer["files"]}
    for item in files:
        assert carried[item["path"]] == (hashlib.sha256(item["content"].encode()).hexdigest(), item["mode"])
    assert answer["users"] == [
        {"name": "deploy", "groups": ["adm"], "shell": "/bin/bash", "authorized_keys": [key]}
    ]
    assert key in answer["authorized_keys"]
    assert answer["packages"] == MANIFEST["packages"]
    assert answer["build_finished"] == f"provisioning-build-finished {build_ref(reservation)}"


def test_on_aws_a_build_runs_on_one_builder_and_leaves_one_available_ami_the_instances_use(
    celery_worker, owner, aws_endpoint
):
    region = "us-west-2"
    body = launch_body(provider="aws", regions=(region,), account=aws_account(owner[1]), amount=2)
    reservation = finished(owner[1], start(owner[1], body)["reservation"]["id"])
    assert reservation["state"] == "succeeded", reservation
    left = left_at_aws(region, build_ref(reservation))
    assert len(left["builders"]) == 1 and gone(left["builders"]), left
    [(image_id, state)] = left["images"]
    assert state == "available"
    assert len(left["snapshots"]) == 1
    assert ImageBuild.objects.get(pk=reservation["build"]).image_ids == {region: image_id}
    assert {i["detail"]["image_id"] for i in reservation["instances"]} == {image_id}
    assert len(reservation["instances"]) == 2


def test_on_aws_a_worker_killed_during_the_build_leaves_exactly_one_builder_and_one_ami(
    celery_worker, owner, aws_endpoint
):
    region = "eu-central-1"
    body = launch_body(
        "stuck-kill", provider="aws", regions=(region,), account=aws_account(owner[1]), amount=1
    )
    reservation_id = start(owner[1], body)["reservation"]["id"]
    ref = build_ref({"build": ImageBuild.objects.get(reservations__pk=reservation_id).pk})
    ec2 = get_provider("aws", AWS).ec2(region)

    # Killed while the builder applies the manifest: started again, it finds the same builder.
    wait_until(lambda: left_at_aws(region, ref)["builders"] == ["running"], what="the builder", sweep=False)
    celery_worker.kill()
    killed_at = time.time()
    celery_worker.start()
    operation = Reservation.objects.get(pk=reservation_id).operation_id

    def looked_again() -> bool:
        steps = Operation.objects.get(pk=operation).steps
        return float(steps.get("wait_ready", {}).get("started_at") or 0) > killed_at

    wait_until(looked_again, timeout=60, what="a look at the build after the kill")
    [builder] = left_at_aws(region, ref)["builder_ids"]
    # The builder says it finished (what MotoBuilders does for other builds): stopped, then imaged.
    ec2.create_tags(Resources=[builder], Tags=[{"Key": TAG_FINISHED, "Value": ref}])
    wait_until(lambda: left_at_aws(region, ref)["images"], what="the AMI", sweep=False)
    celery_worker.kill()  # killed once the AMI exists
    celery_worker.start()

    reservation = finished(owner[1], reservation_id)
    assert reservation["state"] == "succeeded", (reservation["status"], reservation["error"])
    left = left_at_aws(region, ref)
    assert left["builder_ids"] == [builder] and gone(left["builders"]), left
    [(image_id, state)] = left["images"]
    assert state == "available"
    assert len(left["snapshots"]) == 1
    assert [i["detail"]["image_id"] for i in reservation["instances"]] == [image_id]


def test_on_aws_a_builder_that_fails_leaves_no_builder_ami_or_snapshot(celery_worker, owner, aws_endpoint):
    region = "ap-southeast-2"
    body = launch_body(
        "stuck-fail", provider="aws", regions=(region,), account=aws_account(owner[1]), amount=1
    )
    reservation_id = start(owner[1], body)["reservation"]["id"]
    ref = build_ref({"build": ImageBuild.objects.get(reservations__pk=reservation_id).pk})
    wait_until(lambda: left_at_aws(region, ref)["builders"] == ["running"], what="the builder", sweep=False)
    [builder] = left_at_aws(region, ref)["builder_ids"]
    get_provider("aws", AWS).ec2(region).stop_instances(InstanceIds=[builder])  # it shut down half-way

    reservation = finished(owner[1], reservation_id)
    assert reservation["state"] == "failed", reservation
    assert "the builder stopped before the build finished" in reservation["error"]
    left = left_at_aws(region, ref)
    assert gone(left["builders"]) and left["images"] == [] and left["snapshots"] == [], left
    assert reservation["instances"] == []


def test_on_aws_a_build_that_times_out_leaves_no_builder_ami_or_snapshot(
    celery_worker, owner, aws_endpoint, settings
):
    settings.IMAGES_BUILD_TIMEOUT = 4
    region = "us-east-1"
    body = launch_body(
        "stuck-late", provider="aws", regions=(region,), account=aws_account(owner[1]), amount=1
    )
    reservation = finished(owner[1], start(owner[1], body)["reservation"]["id"])
    assert reservation["state"] == "timed_out", reservation
    left = left_at_aws(region, build_ref(reservation))
    assert len(left["builders"]) == 1 and gone(left["builders"]), left
    assert left["images"] == [] and left["snapshots"] == []


def test_on_aws_a_launch_that_fails_after_a_one_off_build_removes_its_ami_and_snapshot(
    celery_worker, owner, aws_endpoint
):
    region = "ca-central-1"
    body = launch_body(
        provider="aws",
        regions=(region,),
        account=aws_account(owner[1]),
        amount=1,
        inject_fault="describe_instances",
        one_off_image=True,
    )
    reservation = finished(owner[1], start(owner[1], body)["reservation"]["id"])
    assert reservation["state"] == "failed", reservation
    left = left_at_aws(region, build_ref(reservation))
    assert gone(left["builders"]) and left["images"] == [] and left["snapshots"] == [], left
