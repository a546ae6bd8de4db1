"""Local instances across a stop and a start of the embedded service: what the API says of each
instance is what answers on its port (or that nothing does), before, while and after."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request

from tests.embedded.service import EmbeddedService
from tests.embedded.workload import Workload


def answers(port: int | None) -> dict | None:
    if not port:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as answer:
            return json.loads(answer.read())
    except OSError:
        return None


def instances(service: EmbeddedService, reservation_id: int) -> list[dict]:
    status, reservation = service.api("GET", f"/api/reservations/{reservation_id}/")
    assert status == 200, reservation
    return reservation["instances"]


def assert_api_matches_ports(service: EmbeddedService, reservation_id: int, state: str) -> list[dict]:
    listed = instances(service, reservation_id)
    assert listed and {i["state"] for i in listed} == {state}, listed
    for instance in listed:
        health = answers(instance["detail"]["port"])
        if state == "running":
            assert health and health["instance_id"] == instance["instance_id"], (instance, health)
            assert health["image_id"] == instance["detail"]["image_id"]
        else:
            assert health is None, instance
    return listed


def rows_in_database(service: EmbeddedService) -> dict[str, str]:
    with sqlite3.connect(service.data_dir / "db.sqlite3") as db:
        return dict(db.execute("SELECT instance_id, state FROM images_reservationinstance"))


def test_instances_stopped_with_the_service_start_with_it_again_and_the_api_says_so(embedded_repo, tmp_path):
    service = EmbeddedService(embedded_repo, tmp_path / "data")
    service.start()
    try:
        work = Workload(service, prefix="ins")
        work.launch()
        work.launch()
        assert work.wait_finished(180) == []
        kept, terminated = work.reservations
        before = assert_api_matches_ports(service, kept, "running")
        status, _ = service.api("POST", f"/api/reservations/{terminated}/terminate/")
        assert status == 200
        assert_api_matches_ports(service, terminated, "terminated")

        assert service.stop() == 0
        # While the service is down its instances are down too, and the database says so.
        assert all(answers(i["detail"]["port"]) is None for i in before)
        states = rows_in_database(service)
        assert {states[i["instance_id"]] for i in before} == {"stopped"}, states

        service.start()
        deadline = time.monotonic() + 60
        while {i["state"] for i in instances(service, kept)} != {"running"}:
            assert time.monotonic() < deadline, instances(service, kept)
            time.sleep(0.5)
        after = assert_api_matches_ports(service, kept, "running")
        assert sorted(i["instance_id"] for i in after) == sorted(i["instance_id"] for i in before)
        assert_api_matches_ports(service, terminated, "terminated")
    finally:
        if service.process.poll() is None:
            service.stop()
