"""No single beat: two real `celery beat` processes send the sweeper's tick, the real worker runs it,
and the tick's claim keeps them to one tick per interval; killing one beat leaves the ticks going."""

import time

import pytest
from django.conf import settings

from provisioning import heartbeats
from tests.conftest import ARTIFACTS, BeatProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

BEATS_FOR = 60.0  # seconds both beats run


def sends(beat: BeatProcess) -> int:
    return beat.log_path.read_text(errors="replace").count("Sending due task saga-sweep")


def wait_ticks(more_than: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (ticks := heartbeats.sweeper_ticks()) <= more_than:
        assert time.monotonic() < deadline, f"the sweeper stopped ticking at {ticks}"
        time.sleep(0.1)
    return ticks


def test_two_beats_tick_no_more_often_than_one_and_losing_one_leaves_ticks_going(worker_env):
    logdir = ARTIFACTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    beats = [BeatProcess(worker_env, logdir, name=f"beat-{i}") for i in (1, 2)]
    try:
        for beat in beats:
            beat.start()
        first = wait_ticks(heartbeats.sweeper_ticks(), timeout=30)
        sent_before = [sends(beat) for beat in beats]
        t0 = time.monotonic()
        time.sleep(BEATS_FOR)
        ticks = heartbeats.sweeper_ticks() - first
        elapsed = time.monotonic() - t0
        sent = sum(sends(beat) - before for beat, before in zip(beats, sent_before, strict=True))
        interval = settings.SAGA_SWEEP_INTERVAL
        # Both beats sent a tick every interval, yet no more than one tick per interval ran (a slow
        # machine makes them fewer, never more: the bound does not depend on the machine's speed).
        assert 0 < ticks <= elapsed / interval + 2, (ticks, elapsed, sent)
        assert sent > 1.5 * ticks, (ticks, sent)

        beats[0].kill()
        after_kill = heartbeats.sweeper_ticks()
        wait_ticks(after_kill + 3, timeout=30)
        assert heartbeats.sweeper_seen_at() is not None
    finally:
        for beat in beats:
            beat.stop()
