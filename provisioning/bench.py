"""Benchmarks that print numbers (README, "Benchmarks"; results in BENCHMARKS.md).

    python -m provisioning.bench saga [--n 500] [--latency 20]
        N no-op 5-step sagas against N plain Celery chains of 5 no-op tasks, on the same broker and the
        same worker (started here: prefork, 2 processes), then queries and write commits per step.
    python -m provisioning.bench sweep [--sizes 1000 100000] [--due 100]
        One sweeper tick with that many waiting operations of which --due are due.
    python -m provisioning.bench waits [--builds 100] [--build-seconds 60]
        M build-and-launches whose image takes T seconds to build, on one worker with 2 processes, and
        demo sagas started while they wait: last launch ÷ T, a demo's time ÷ its time on an idle worker,
        the sweeper's tick and the database's commits per second while they wait.
    python -m provisioning.bench bookings [--count 1000] [--concurrency 20]
        The service (gunicorn, worker, beat) started here, then a burst of bookings against it
        (manage.py bench_bookings): posts/s, POST latency p50/p99, every event's end.

Uses DATABASE_URL / CELERY_BROKER_URL / CELERY_RESULT_BACKEND like the service; run it against
PostgreSQL and Redis, on a database you can spare (it adds rows).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provisioning.settings")
django.setup()

from celery import chain, shared_task  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from provisioning.celery import app  # noqa: E402
from provisioning.models import Operation  # noqa: E402
from provisioning.saga import runner  # noqa: E402

STEPS = 5
ROOT = Path(__file__).resolve().parent.parent


@shared_task(name="provisioning.bench_noop")
def noop(x):
    return x


def plain_chain(i: int):
    return chain(noop.s(i), *[noop.s() for _ in range(STEPS - 1)])


def start_worker() -> subprocess.Popen:
    log = open(Path(os.environ.get("DATA_DIR", "/tmp")) / "bench-worker.log", "w")
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "provisioning",
        "worker",
        "-l",
        "warning",
        "-P",
        "prefork",
        "-c",
        "2",
        "-n",
        f"bench-{os.getpid()}@%h",
        "--include",
        "provisioning.bench",
        "--without-gossip",
        "--without-mingle",
    ]
    # Warnings only, as the chain's worker (-l warning): the service's own log level is set apart.
    env = {**os.environ, "LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    for _ in range(10):  # warm-up doubles as the readiness check
        try:
            plain_chain(0).apply_async().get(timeout=30)
            return proc
        except Exception:
            time.sleep(1)
    stop_worker(proc)  # never left behind to consume the next run's messages
    raise SystemExit("the benchmark worker did not start (see bench-worker.log)")


def stop_worker(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a worker still shutting down must not outlive the run
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def start_saga():
    with transaction.atomic():
        return runner.start(kind="demo").pk


def wait_sagas(ids: list, timeout: float = 600, poll: float = 0.02) -> None:
    """Wait until every one of `ids` succeeded. One cheap query a look (the last unfinished one in
    creation order), so that the waiting loads the database as little as the chains' result polling."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} sagas did not finish in {timeout} s")
        state = Operation.objects.filter(pk=pending[0]).values_list("state", flat=True).first()
        if state == "succeeded":
            pending.pop(0)
        else:
            time.sleep(poll)


def measure_latency(run_one, samples: int) -> float:
    lat = []
    for _ in range(samples):
        t0 = time.perf_counter()
        run_one()
        lat.append(time.perf_counter() - t0)
        time.sleep(0.05)
    return statistics.median(lat) * 1000


def step_costs() -> dict:
    """Queries and write transactions of one 5-step saga, run step by step in this process through the
    same runner code the worker runs."""
    statements: list[str] = []
    commits: list[bool] = []  # per commit: did its transaction write?
    writes = {"INSERT", "UPDATE", "DELETE"}
    wrote = False

    def record(execute, sql, params, many, context):
        nonlocal wrote
        verb = sql.split(None, 1)[0].upper()
        statements.append(verb)
        if verb in writes:
            if connection.in_atomic_block:
                wrote = True
            else:
                commits.append(True)  # autocommit: the statement is its own transaction
        return execute(sql, params, many, context)

    real_commit = connection.commit

    def counting_commit():
        nonlocal wrote
        commits.append(wrote)
        wrote = False
        return real_commit()

    op_id = start_saga()
    op = Operation.objects.get(pk=op_id)
    names = list(op.steps)
    connection.commit = counting_commit
    try:
        with connection.execute_wrapper(record):
            runner.execute_segment(str(op_id), op.kind, list(range(len(names))))
    finally:
        del connection.commit
    txs = sum(commits)
    return {
        "queries_per_step": round(len(statements) / len(names), 2),
        "write_commits_per_step": round(txs / len(names), 2),
        "final_state": Operation.objects.get(pk=op_id).state,
    }


def bench_saga(n: int, samples: int) -> dict:
    costs = step_costs()
    app.control.purge()  # the step-by-step run above also sent its chain; drop it
    worker = start_worker()
    try:
        for _ in range(5):
            wait_sagas([start_saga()])
        chain_p50 = measure_latency(lambda: plain_chain(1).apply_async().get(timeout=30), samples)
        saga_p50 = measure_latency(lambda: wait_sagas([start_saga()], poll=0.002), samples)

        t0 = time.perf_counter()
        results = [plain_chain(i).apply_async() for i in range(n)]
        for r in results:
            r.get(timeout=600)
        chain_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        ids = [start_saga() for _ in range(n)]
        wait_sagas(ids)
        saga_s = time.perf_counter() - t0
    finally:
        stop_worker(worker)
    return {
        "benchmark": "saga",
        "N": n,
        "steps": STEPS,
        "chain_per_s": round(n / chain_s, 1),
        "saga_per_s": round(n / saga_s, 1),
        "ratio": round(chain_s / saga_s, 3),
        "chain_p50_ms": round(chain_p50, 1),
        "saga_p50_ms": round(saga_p50, 1),
        "latency_ratio": round(saga_p50 / chain_p50, 2),
        **costs,
    }


def bench_sweep(sizes: list[int], due: int) -> dict:
    """Time one sweeper tick over `due` due operations hidden among `size` waiting ones. The due ones
    are terminal rows with a stale sweep_at, so the tick only clears them: it measures finding them."""
    from datetime import timedelta

    result = {"benchmark": "sweep", "due": due}
    for size in sizes:
        Operation.objects.filter(kind="demo", data__bench="sweep").delete()
        now = timezone.now()
        far = now + timedelta(days=1)
        rows = [
            Operation(kind="demo", state="waiting", sweep_at=far, data={"bench": "sweep"}, steps={})
            for _ in range(size - due)
        ]
        rows += [
            Operation(
                kind="demo",
                state="succeeded",
                sweep_at=now - timedelta(seconds=1),
                data={"bench": "sweep"},
                steps={},
            )
            for _ in range(due)
        ]
        Operation.objects.bulk_create(rows, batch_size=5000)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("ANALYZE provisioning_operation")
        t0 = time.perf_counter()
        moved = runner.sweep()
        elapsed = time.perf_counter() - t0
        result[f"tick_ms_at_{size}"] = round(elapsed * 1000, 1)
        result[f"moved_at_{size}"] = moved
        Operation.objects.filter(kind="demo", data__bench="sweep").delete()
    small, large = (f"tick_ms_at_{s}" for s in (sizes[0], sizes[-1]))
    result["ratio_large_to_small"] = round(result[large] / result[small], 2)
    return result


def _commits() -> int:
    """Transactions committed in this database so far (PostgreSQL's own counter)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


class Sweeper(threading.Thread):
    """A beat of our own that ticks the sweeper every SAGA_SWEEP_INTERVAL in this process (one of the
    "any number of beats") and times every tick."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.ticks: list[tuple[float, float, int]] = []  # (when, seconds, operations moved)

    def run(self) -> None:
        from django.conf import settings

        try:
            while not self.stop.wait(settings.SAGA_SWEEP_INTERVAL):
                t0 = time.perf_counter()
                moved = runner.sweep()
                self.ticks.append((time.monotonic(), time.perf_counter() - t0, moved))
        finally:
            connection.close()


def _reap(reservations: list[int], reaped: set[int]) -> set[int]:
    """Stop the instance processes of launches that finished (straight at the provider: the rows
    stay), so that a thousand launches never run a thousand processes at once on this machine."""
    from images.models import Reservation, ReservationInstance
    from provisioning.providers.local import LocalProvider

    done = set(
        Reservation.objects.filter(pk__in=reservations, finished_at__isnull=False).values_list(
            "pk", flat=True
        )
    )
    local = LocalProvider(latency=0)
    rows = ReservationInstance.objects.filter(reservation_id__in=done - reaped)
    for region, instance_id in rows.values_list("region", "instance_id"):
        local.terminate_instances(region=region, instance_ids=[instance_id])
    return done


def bench_waits(
    builds: int, build_seconds: float, demos: int, reap: bool = False, waits_only: bool = False
) -> dict:
    """M build-and-launches (one region, one instance each) whose build takes T seconds, on one
    worker with 2 processes, and `demos` demo sagas started one after the other while they wait.
    With `reap`, the instances of finished launches are stopped as they finish; with `waits_only`,
    every launch is cancelled once the waiting was measured (M = 1000 on a small machine)."""
    from django.conf import settings

    from images.models import Reservation
    from images.services import image_build_launch
    from provisioning.models import Customer, StepRun
    from provisioning.providers.local import LocalProvider

    os.environ["LOCAL_PROVIDER_BUILD_SECONDS"] = str(build_seconds)  # the worker builds by it
    settings.IMAGES_PENDING_RESERVATIONS_LIMIT = builds + 10
    customer = Customer.objects.create(name=f"bench-waits-{os.getpid()}-{time.time():.0f}")
    manifest = {
        "distribution": "fedora-41",
        "architecture": "x86_64",
        "packages": ["curl"],
        "target": {"provider": "local", "regions": ["local-1"]},
    }
    app.control.purge()
    worker = start_worker()
    sweeper = Sweeper()
    sweeper.start()
    try:
        for _ in range(5):
            wait_sagas([start_saga()])
        idle_ms = measure_latency(lambda: wait_sagas([start_saga()], poll=0.002), 20)

        t0 = time.monotonic()
        started_at = timezone.now()
        reservations = []
        for i in range(builds):
            with transaction.atomic():
                launched = image_build_launch(
                    customer=customer, name=f"bench-{i}", manifest=manifest, launch={"amount": 1}
                )
            reservations.append(launched.reservation.pk)
        started_s = time.monotonic() - t0

        # Demo sagas spread over the wait, the first 5 s after the start (as the issue measured).
        demo_ms: list[float] = []
        window = (t0 + min(10.0, build_seconds / 6), t0 + build_seconds * 0.9)
        commits_from = None
        for k in range(demos):
            at = t0 + 5.0 + k * max(0.5, (build_seconds * 0.9 - 5.0) / max(1, demos))
            while time.monotonic() < at:
                if commits_from is None and time.monotonic() >= window[0]:
                    commits_from = (time.monotonic(), _commits())
                time.sleep(0.05)
            one = time.perf_counter()
            wait_sagas([start_saga()], poll=0.002)
            demo_ms.append((time.perf_counter() - one) * 1000)
        while time.monotonic() < window[1]:
            if commits_from is None and time.monotonic() >= window[0]:
                commits_from = (time.monotonic(), _commits())
            time.sleep(0.05)
        commits_to = (time.monotonic(), _commits())
        if commits_from is None:
            commits_from = commits_to
        looks = StepRun.objects.filter(
            operation__kind__startswith="images.build_launch",
            outcome="look",
            finished_at__gte=started_at,
        ).count()

        if waits_only:
            # Measured what waiting costs; cancel the lot before anything launches (M = 1000: a
            # thousand instance processes would not fit this machine beside the others).
            from provisioning.services import operation_cancel

            for reservation in Reservation.objects.filter(pk__in=reservations, finished_at__isnull=True):
                operation = Operation.objects.filter(pk=reservation.operation_id).first()
                if operation is not None and operation.can_cancel:
                    operation_cancel(operation=operation, reason="benchmark: waits only")
        deadline = time.monotonic() + build_seconds * 4 + 30 * builds
        pending = Reservation.objects.filter(pk__in=reservations, finished_at__isnull=True)
        reaped: set[int] = set()
        while pending.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{pending.count()} launches did not finish")
            if reap:
                reaped |= _reap(reservations, reaped)
            time.sleep(0.5)
        finished = Reservation.objects.filter(pk__in=reservations)
        last = max(finished.values_list("finished_at", flat=True))
        states = dict.fromkeys(finished.values_list("state", flat=True).distinct(), 0)
        for state in finished.values_list("state", flat=True):
            states[state] += 1
        in_wait = [t for t in sweeper.ticks if window[0] <= t[0] <= window[1]]
    finally:
        sweeper.stop.set()
        sweeper.join()
        stop_worker(worker)
        LocalProvider(latency=0).stop_all()
    last_s = (last - started_at).total_seconds()
    span = max(0.001, commits_to[0] - commits_from[0])
    ticks_ms = sorted(t[1] * 1000 for t in in_wait) or [0.0]
    return {
        "benchmark": "waits",
        "builds": builds,
        "build_seconds": build_seconds,
        "states": states,
        "started_in_s": round(started_s, 1),
        "last_launch_s": None if waits_only else round(last_s, 1),
        "last_launch_ratio": None if waits_only else round(last_s / build_seconds, 3),
        "demo_idle_ms": round(idle_ms, 1),
        "demo_ms": [round(ms, 1) for ms in demo_ms],
        "demo_ratio_median": round(statistics.median(demo_ms) / idle_ms, 2),
        "demo_ratio_max": round(max(demo_ms) / idle_ms, 2),
        "looks": looks,
        "commits_per_s_while_waiting": round((commits_to[1] - commits_from[1]) / span, 1),
        "sweep_tick_ms_p50": round(statistics.median(ticks_ms), 1),
        "sweep_tick_ms_max": round(max(ticks_ms), 1),
        "sweep_moved_per_tick_max": max((t[2] for t in in_wait), default=0),
    }


def _spawn(argv: list[str], log_name: str, env: dict | None = None) -> subprocess.Popen:
    log = open(Path(os.environ.get("DATA_DIR", "/tmp")) / log_name, "w")
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def bench_bookings(count: int, concurrency: int) -> None:
    """The service as an operator runs it (gunicorn, a worker, beat) on this DATABASE_URL and broker,
    then `manage.py bench_bookings` against it: posts/s, POST p50/p99, and every event's end."""
    import socket
    import urllib.request

    from django.core.management import call_command

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    procs = [
        _spawn(
            [str(bin_dir / "gunicorn"), "provisioning.wsgi:application", "-c", "deploy/gunicorn.conf.py"],
            "bench-web.log",
            # A burst from one customer is what the rate limit exists to stop: off for the load test.
            env={**os.environ, "PORT": str(port), "RATE_LIMIT_BOOKING_ITEMS": "off"},
        ),
        start_worker(),
        _spawn(
            [sys.executable, "-m", "celery", "-A", "provisioning", "beat", "-l", "warning"], "bench-beat.log"
        ),
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/login/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        call_command("bench_bookings", url=url, count=count, concurrency=concurrency)
    finally:
        for proc in procs:
            stop_worker(proc)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m provisioning.bench")
    sub = parser.add_subparsers(dest="what", required=True)
    saga = sub.add_parser("saga")
    saga.add_argument("--n", type=int, default=500)
    saga.add_argument("--latency", type=int, default=20)
    sweep = sub.add_parser("sweep")
    sweep.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    sweep.add_argument("--due", type=int, default=100)
    waits = sub.add_parser("waits")
    waits.add_argument("--builds", type=int, default=100)
    waits.add_argument("--build-seconds", type=float, default=60.0)
    waits.add_argument("--demos", type=int, default=10)
    waits.add_argument("--reap", action="store_true", help="stop finished launches' instances at once")
    waits.add_argument(
        "--waits-only", action="store_true", help="cancel every launch once the wait is measured"
    )
    bookings = sub.add_parser("bookings")
    bookings.add_argument("--count", type=int, default=1000)
    bookings.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    if args.what == "saga":
        print(json.dumps(bench_saga(args.n, args.latency)))
    elif args.what == "sweep":
        print(json.dumps(bench_sweep(args.sizes, args.due)))
    elif args.what == "waits":
        print(
            json.dumps(bench_waits(args.builds, args.build_seconds, args.demos, args.reap, args.waits_only))
        )
    else:
        bench_bookings(args.count, args.concurrency)


if __name__ == "__main__":
    main()
