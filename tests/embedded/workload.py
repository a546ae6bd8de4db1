"""What keeps the embedded service busy in the soak: demo sagas, bookings and local build-and-launches
through the API, each counted so that the test can check that every one of them ended well."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tests.embedded.service import EmbeddedService
from tests.providers.conftest import MANIFEST, ssh_public_key

FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


@dataclass
class Workload:
    service: EmbeddedService
    prefix: str  # webspace names of this run: three letters (two digits follow)
    project: int = 0
    server_item: int = 0
    demo_runs: list[str] = field(default_factory=list)  # a line per run of run_demo_saga that failed
    demo_succeeded: int = 0
    bookings: list[int] = field(default_factory=list)
    reservations: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def set_up(self) -> None:
        """A project and a managed server set up by the hostmaster (the admin the command made)."""
        status, project = self.service.api("POST", "/api/projects/", {"caption": f"soak {self.prefix}"})
        assert status == 201, project
        self.project = project["id"]
        status, item = self.service.api(
            "POST",
            "/api/booking-items/",
            {
                "project": self.project,
                "type": "MANAGED_SERVER",
                "caption": f"server {self.prefix}",
                "resources": {"CPU": 4, "RAM": 8, "SSD": 100},
                "hosting_asset": {"identifier": f"vm{int.from_bytes(self.prefix.encode()) % 9000 + 1000}"},
            },
        )
        assert status == 201, item
        operation = item["hosting_asset_creation"]["operation"]
        status, answer = self.service.api(
            "POST", f"/api/operations/{operation}/signals/", {"name": "setup_done", "payload": {}}
        )
        assert status == 202, answer
        deadline = time.monotonic() + 120
        while self.service.api("GET", f"/api/booking-items/{item['id']}/")[1]["hosting_asset_creation"]:
            assert time.monotonic() < deadline, "the managed server was not set up within 120 s"
            time.sleep(0.5)
        self.server_item = item["id"]
        self.bookings.append(item["id"])

    # --- the three kinds of work, each in a thread of its own ------------------------------------

    def demo_sagas(self, until: float) -> None:
        while time.monotonic() < until:
            done = self.service.manage("run_demo_saga", "--count", "4", "--timeout", "240")
            succeeded = done.stdout.count(": succeeded (")
            self.demo_succeeded += succeeded
            if done.returncode != 0 or succeeded != 4:
                self.demo_runs.append(done.stdout[-2000:] + done.stderr[-2000:])

    def book(self) -> None:
        n = len(self.bookings)
        status, item = self.service.api(
            "POST",
            "/api/booking-items/",
            {
                "project": self.project,
                "parent_item": self.server_item,
                "type": "MANAGED_WEBSPACE",
                "caption": f"webspace {n}",
                "resources": {"SSD": 1},
                "hosting_asset": {"identifier": f"{self.prefix}{n:02d}"},
            },
        )
        if status != 201:
            self.errors.append(f"booking {n}: {status} {item}")
        else:
            self.bookings.append(item["id"])

    def bookings_every(self, seconds: float, until: float) -> None:
        # Under the default rate limit (60 a minute) and the server's 100 GB: a booking every 2 s.
        while time.monotonic() < until and len(self.bookings) < 85:
            try:
                self.book()
            except OSError as exc:  # the web restarting: a client retries later
                self.errors.append(f"booking: {exc}")
            time.sleep(seconds)

    def launch(self) -> None:
        status, answer = self.service.api(
            "POST",
            "/api/image-builds/",
            {
                "name": f"soak-{len(self.reservations)}",
                "manifest": {**MANIFEST, "target": {"provider": "local", "regions": ["local-1", "local-2"]}},
                "launch": {"amount": 2, "public_key": ssh_public_key()},
            },
        )
        if status != 201:
            self.errors.append(f"launch: {status} {answer}")
        else:
            self.reservations.append(answer["reservation"]["id"])

    def run(self, seconds: float, midway=None) -> None:
        """Keep the service busy for `seconds`; `midway(elapsed)` is called every second."""
        start = time.monotonic()
        until = start + seconds
        threads = [
            threading.Thread(target=self.demo_sagas, args=(until,)),
            threading.Thread(target=self.bookings_every, args=(2.0, until)),
        ]
        for thread in threads:
            thread.start()
        self.launch()
        launched_again = False
        while time.monotonic() < until:
            if not launched_again and time.monotonic() - start > seconds / 2:
                self.launch()
                launched_again = True
            if midway:
                midway(time.monotonic() - start)
            time.sleep(1)
        for thread in threads:
            thread.join(timeout=300)

    # --- how it all ended ----------------------------------------------------------------------

    def unfinished(self) -> list[str]:
        left = []
        for item_id in self.bookings:
            status, item = self.service.api("GET", f"/api/booking-items/{item_id}/")
            if status != 200 or item["hosting_asset_creation"] is not None:
                left.append(f"booking {item_id}: {item.get('hosting_asset_creation') if item else status}")
        for reservation_id in self.reservations:
            status, reservation = self.service.api("GET", f"/api/reservations/{reservation_id}/")
            if status != 200 or reservation["state"] != "succeeded":
                left.append(
                    f"reservation {reservation_id}: {reservation.get('state')}: {reservation.get('status')}"
                )
        return left

    def wait_finished(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = self.unfinished()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(2)
