"""The README's run command kept busy for minutes (EMBEDDED_SOAK_SECONDS, 180 by default) while its
broker folder gets an empty and a truncated message file and its worker is SIGKILLed: it stays up,
every saga succeeds, and what could not be read is in the quarantine folder, as the log says.
The second soak starts on the DATA_DIR of a service that lost power with work in flight."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.embedded.service import EmbeddedService
from tests.embedded.workload import Workload

SOAK_SECONDS = float(os.environ.get("EMBEDDED_SOAK_SECONDS", "180"))
# A step whose message died with a killed worker is re-driven after the heartbeat timeout (60 s).
SETTLE_SECONDS = 240


class Mischief:
    """What happens to the service midway: files dropped into its queue folder, its worker killed."""

    def __init__(self, service: EmbeddedService, seconds: float) -> None:
        self.service = service
        self.seconds = seconds
        self.dropped: list[str] = []
        self.killed: list[int] = []

    def __call__(self, elapsed: float) -> None:
        queue = self.service.data_dir / "broker" / "queue"
        if not self.dropped and elapsed > self.seconds * 0.4:
            stamp = f"{time.time_ns():020d}"
            empty, truncated = f"{stamp}_empty.default.msg", f"{stamp}_truncated.default.msg"
            (queue / empty).write_bytes(b"")
            (queue / truncated).write_bytes(b'{"body": "eyJ0YXNrIjog", "content-type": "applica')
            self.dropped = [empty, truncated]
        if not self.killed and elapsed > self.seconds * 0.6:
            pid = self.service.worker_pid()
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)


def quarantined_in_log(service: EmbeddedService) -> dict[str, str]:
    """File name -> the path the log says it was moved to."""
    found = {}
    for line in service.log_lines():
        match = re.search(r"quarantined unreadable message (\S+):", line)
        if match:
            found[Path(match.group(1)).name] = match.group(1)
    return found


def critical_lines(service: EmbeddedService) -> list[str]:
    bad = []
    for line in service.log_lines():
        try:
            level = json.loads(line).get("level", "")
        except ValueError:
            level = "CRITICAL" if "CRITICAL" in line else ""
        if level == "CRITICAL":
            bad.append(line)
    return bad


def soak(service: EmbeddedService, prefix: str) -> Workload:
    work = Workload(service, prefix=prefix)
    work.set_up()
    mischief = Mischief(service, SOAK_SECONDS)
    work.run(SOAK_SECONDS, midway=mischief)

    left = work.wait_finished(SETTLE_SECONDS)
    assert left == [], left
    assert work.demo_runs == [], work.demo_runs
    assert work.errors == [] or all("booking:" in e for e in work.errors), work.errors
    # Busy all along: demo sagas back to back, a booking every 2 s, two build-and-launches.
    assert work.demo_succeeded >= SOAK_SECONDS / 2, work.demo_succeeded
    assert len(work.bookings) >= min(85, SOAK_SECONDS / 3), len(work.bookings)
    assert len(work.reservations) == 2

    assert service.process.poll() is None, service.printed()
    assert service.healthy()
    assert "worker killed by SIGKILL" in service.printed() and "started again" in service.printed()
    logged = quarantined_in_log(service)
    for name in mischief.dropped:
        assert name in logged, (name, logged)
        assert Path(logged[name]).exists() and Path(logged[name]).parent.name == "quarantine"
    assert critical_lines(service) == []
    return work


@pytest.mark.timeout(SOAK_SECONDS * 2 + SETTLE_SECONDS * 2 + 900)
def test_it_stays_up_through_minutes_of_work_a_bad_broker_folder_and_a_killed_worker_also_after_a_crash(
    embedded_repo, tmp_path
):
    service = EmbeddedService(embedded_repo, tmp_path / "data")
    service.start()
    try:
        first = soak(service, "sok")

        # Power lost with work in flight: the worker dies first, bookings are taken while it is gone
        # (their messages wait in the queue folder), a reader dies between its claim and its read.
        os.kill(service.worker_pid(), signal.SIGSTOP)
        before = Workload(service, prefix="crs", project=first.project, server_item=first.server_item)
        for _ in range(5):
            before.book()
        queue = service.data_dir / "broker"
        pending = sorted(p.name for p in (queue / "queue").glob("*.msg"))
        assert pending, "the bookings' messages wait in the queue folder"
        victim = queue / "queue" / pending[0]
        claimed = queue / "claimed" / pending[0]
        os.rename(victim, claimed)
        os.utime(claimed, (time.time() - 3600, time.time() - 3600))
        (queue / "queue" / f"{time.time_ns():020d}_old-kombu.default.msg").write_bytes(b"")
        service.crash()

        service.start()
        assert before.wait_finished(SETTLE_SECONDS) == [], "work from before the crash is not lost"
        assert not (queue / "claimed" / pending[0]).exists()
        soak(service, "aft")
    finally:
        if service.process and service.process.poll() is None:
            service.stop()
