"""A CLOUD_SERVER booking launches its server through the images app's build→launch saga, and every
status change of the launch is written onto the booking's BookingItemCreatedEvent (real worker, the
local provider's real instance processes)."""

from __future__ import annotations

import re

import pytest

from bookings.choices import BookingItemType, HostingAssetType
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset
from images.models import Reservation
from images.services import reservation_terminate
from provisioning.providers.local import LocalProvider
from tests.bookings.conftest import event_of, wait_until
from tests.providers.conftest import MANIFEST, health, ssh_public_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("real_services")]


def cloud_server(project, launch: dict | None = None) -> dict:
    launch = launch or {
        "manifest": {**MANIFEST, "target": {"provider": "local", "regions": ["local-2"]}},
        "launch": {"amount": 1, "instance_type": "small", "public_key": ssh_public_key()},
    }
    return {
        "project": project.pk,
        "type": BookingItemType.CLOUD_SERVER,
        "caption": "Build server",
        "resources": {"CPU": 2, "RAM": 4, "SSD": 50},
        "hosting_asset": {"identifier": "vm2001", "launch": launch},
    }


@pytest.fixture
def no_local_instance_left():
    yield
    local = LocalProvider(latency=0)
    local.stop_all()
    assert local.live_processes() == []


def test_it_launches_the_server_and_writes_every_launch_status_onto_the_event(
    celery_worker, owner, project, no_local_instance_left
):
    answer = owner[1].post("/api/booking-items/", cloud_server(project), format="json")
    assert answer.status_code == 201, answer.json()
    item_id = answer.json()["id"]

    seen: list[str] = []

    def asset_created():
        event = event_of(item_id)
        if event is not None and (not seen or seen[-1] != event.status_message):
            seen.append(event.status_message)
        return HostingAsset.objects.filter(booking_item_id=item_id).first() if event is None else None

    server = wait_until(asset_created, timeout=90, what="the cloud server's asset")
    assert server.type == HostingAssetType.CLOUD_SERVER and server.identifier == "vm2001"
    reservation = Reservation.objects.get(pk=server.config["reservation"])
    assert reservation.listener_key and reservation.amount == 1
    assert server.config["region"] == "local-2" and server.config["provider"] == "local"
    instance = reservation.instances.get()
    assert server.config["instance"] == instance.instance_id
    assert health(instance.detail["port"])["instance_id"] == instance.instance_id

    # The event followed the launch step by step (polling sees most of the changes, in order).
    steps = [int(m) for s in seen for m in re.findall(r"Launching the server: step (\d) of 6", s)]
    assert len(set(steps)) >= 2 and steps == sorted(steps), seen
    assert owner[1].get(f"/api/booking-items/{item_id}/").json()["hosting_asset_creation"] is None

    assert reservation_terminate(reservation=reservation) == 1
    assert LocalProvider(latency=0).live_processes() == []


def test_it_answers_400_for_a_bad_launch_and_stores_nothing(owner, project):
    body = cloud_server(
        project,
        {
            "manifest": {
                **MANIFEST,
                "distribution": "windows",
                "target": {"provider": "local", "regions": []},
            },
            "launch": {"amount": 0},
            "colour": "blue",
        },
    )
    answer = owner[1].post("/api/booking-items/", body, format="json")
    assert answer.status_code == 400
    fields = set(answer.json())
    assert {
        "hosting_asset.launch.manifest.distribution",
        "hosting_asset.launch.manifest.target.regions",
        "hosting_asset.launch.launch.amount",
        "hosting_asset.launch.colour",
    } <= fields, fields
    assert not BookingItem.objects.exists() and not BookingItemCreatedEvent.objects.exists()
    assert not Reservation.objects.exists()
