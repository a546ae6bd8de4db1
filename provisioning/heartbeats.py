"""Signs of life of the workers and of the sweeper, kept in the database (`Heartbeat` rows).

Every worker writes its row, with the queues it consumes, every WORKER_HEARTBEAT_INTERVAL seconds from
a bootstep in its main process, and removes it when it stops; the sweeper task writes its own at every
tick. Health and metrics read the rows: one indexed query, the same answer on every web machine, and
no broadcast over the broker to every worker on each look.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

log = logging.getLogger("provisioning.heartbeats")

SWEEPER = "sweeper"


def worker_stale_after() -> timedelta:
    """A worker not heard of for three intervals is taken as gone."""
    return timedelta(seconds=3 * settings.WORKER_HEARTBEAT_INTERVAL)


def sweeper_stale_after() -> timedelta:
    """The sweeper ticks every SAGA_SWEEP_INTERVAL; a busy default queue may delay a tick a little."""
    return timedelta(seconds=max(30.0, 10 * settings.SAGA_SWEEP_INTERVAL))


# --- Services ------------------------------------------------------------------------------------


def heartbeat_record(
    *, name: str, role: str, queues: list[str] | None = None, pid: int | None = None
) -> None:
    from provisioning.models import Heartbeat

    now = timezone.now()
    values = {"role": role, "queues": sorted(queues or []), "pid": pid, "seen_at": now}
    if not Heartbeat.objects.filter(name=name).update(**values):
        Heartbeat.objects.update_or_create(
            name=name, defaults=values, create_defaults={**values, "started_at": now}
        )


def sweeper_tick_claim(*, now: datetime | None = None) -> bool:
    """Claim the next sweeper tick: a compare-and-set on the sweeper's heartbeat row that succeeds
    only if no tick was claimed within most of SAGA_SWEEP_INTERVAL, so that two beats (or ten) tick
    no more often than one. The row is also the sweeper's sign of life for /health/."""
    from django.db import IntegrityError, transaction
    from django.db.models import F

    from provisioning.models import Heartbeat

    now = now or timezone.now()
    gap = timedelta(seconds=0.75 * settings.SAGA_SWEEP_INTERVAL)
    claimed = Heartbeat.objects.filter(name=SWEEPER, seen_at__lte=now - gap).update(
        seen_at=now, ticks=F("ticks") + 1, pid=os.getpid(), role=SWEEPER
    )
    if claimed or Heartbeat.objects.filter(name=SWEEPER).exists():
        return bool(claimed)
    try:
        with transaction.atomic():  # the very first tick
            Heartbeat.objects.create(
                name=SWEEPER, role=SWEEPER, pid=os.getpid(), started_at=now, seen_at=now, ticks=1
            )
    except IntegrityError:
        return False  # another machine's first tick came first
    return True


def sweeper_ticks() -> int:
    """How many ticks the sweeper made since its row was created."""
    from provisioning.models import Heartbeat

    return Heartbeat.objects.filter(name=SWEEPER).values_list("ticks", flat=True).first() or 0


def heartbeat_remove(*, name: str) -> None:
    from provisioning.models import Heartbeat

    Heartbeat.objects.filter(name=name).delete()


def heartbeats_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget workers that stopped without saying so (killed) long ago."""
    from provisioning.models import Heartbeat

    deleted, _ = Heartbeat.objects.filter(seen_at__lt=timezone.now() - older_than).delete()
    return deleted


# --- Selectors -----------------------------------------------------------------------------------


def live_workers(now: datetime | None = None) -> dict[str, list[str]]:
    """Node name → the queues it consumes, for every worker heard of recently."""
    from provisioning.models import Heartbeat

    since = (now or timezone.now()) - worker_stale_after()
    rows = Heartbeat.objects.filter(role=Heartbeat.Role.WORKER, seen_at__gte=since)
    return dict(rows.values_list("name", "queues"))


def consumers_by_queue(workers: dict[str, list[str]], queues: list[str]) -> dict[str, list[str]]:
    return {queue: sorted(name for name, qs in workers.items() if queue in qs) for queue in queues}


def sweeper_seen_at() -> datetime | None:
    from provisioning.models import Heartbeat

    return Heartbeat.objects.filter(name=SWEEPER).values_list("seen_at", flat=True).first()


def service_queues() -> list[str]:
    """Every queue the service routes work to (default plus one per provider)."""
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


# --- The worker's bootstep -----------------------------------------------------------------------


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Writes the worker's row when its consumer starts and every interval after; removes it when the
    consumer stops (shutdown, or a lost broker connection: the worker consumes nothing meanwhile)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, consumer) -> None:
        self._beat(consumer)
        try:
            heartbeats_prune()
        except Exception as exc:
            log.warning("could not prune old heartbeats: %s", exc)
        self.timer_ref = consumer.timer.call_repeatedly(
            settings.WORKER_HEARTBEAT_INTERVAL, self._beat, (consumer,), priority=10
        )

    def stop(self, consumer) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        try:
            close_old_connections()
            heartbeat_remove(name=consumer.hostname)
        except Exception as exc:  # the database may be what went away
            log.warning("could not remove the heartbeat of %s: %s", consumer.hostname, exc)

    shutdown = stop

    def _beat(self, consumer) -> None:
        queues = [queue.name for queue in consumer.task_consumer.queues] if consumer.task_consumer else []
        try:
            close_old_connections()
            heartbeat_record(name=consumer.hostname, role="worker", queues=queues, pid=os.getpid())
        except Exception as exc:  # health shows the worker as gone; the worker itself goes on
            log.warning("could not write the heartbeat of %s: %s", consumer.hostname, exc)
