"""The embedded default's broker against the other broker that needs no server, in one sitting.

    python -m provisioning.bench_broker [--n 50] [--idle 20]

For each candidate, on an embedded default of its own (SQLite in a fresh DATA_DIR, no DATABASE_URL):
a worker as run-embedded starts it (prefork, 2 processes) and beat, then N demo sagas one after the
other (each one's time from start to succeeded, p50 and p95), then the CPU seconds the worker, its
pool and beat spend while nothing happens for --idle seconds, and during the sagas.

Candidates: `filesystem://` (provisioning/broker.py, the default) and kombu's SQLAlchemy transport on
an SQLite file (`sqla+sqlite:///...`; needs SQLAlchemy, which the service does not depend on:
`pip install sqlalchemy`). Prints one JSON object per candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

DRIVE = """
import json, sys, time
import django
django.setup()
from django.db import transaction
from provisioning.saga import runner
n = int(sys.argv[1])
runner.wait_for(runner.start(kind="demo").pk, timeout=120)  # warm: the worker has its connections
times = []
for _ in range(n):
    began = time.perf_counter()
    with transaction.atomic():
        op = runner.start(kind="demo")
    op = runner.wait_for(op.pk, timeout=120, poll=0.005)
    assert op.state == "succeeded", op.state
    times.append(time.perf_counter() - began)
print(json.dumps(times))
"""


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes and of their children now running (the worker's pool)."""
    total = 0
    seen = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            todo.extend(int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
        except (OSError, ValueError):
            continue
    return total / TICKS


def measure(name: str, broker_url: str, data_dir: Path, n: int, idle: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_RESULT_BACKEND")}
    env.update(DATA_DIR=str(data_dir), CELERY_BROKER_URL=broker_url, LOG_LEVEL="warning")
    env.pop("CACHE_URL", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    logs = open(data_dir / "bench.log", "w")
    procs = [
        subprocess.Popen(
            [python, "-m", "celery", "-A", "provisioning", "worker", "-l", "warning", "-c", "2"],
            cwd=ROOT,
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [
                python,
                "-m",
                "celery",
                "-A",
                "provisioning",
                "beat",
                "-l",
                "warning",
                "-s",
                str(data_dir / "beat"),
            ],
            cwd=ROOT,
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    pids = [p.pid for p in procs]
    try:
        before = cpu_seconds(pids)
        done = subprocess.run(
            [python, "-c", DRIVE, str(n)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0:
            raise SystemExit(f"{name}: the sagas did not run: {done.stderr[-2000:]}")
        busy = cpu_seconds(pids) - before
        times = sorted(json.loads(done.stdout.strip().splitlines()[-1]))
        time.sleep(2)
        before = cpu_seconds(pids)
        time.sleep(idle)
        idle_cpu = cpu_seconds(pids) - before
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return {
        "broker": name,
        "sagas": n,
        "saga_p50_ms": round(statistics.median(times) * 1000, 1),
        "saga_p95_ms": round(times[int(len(times) * 0.95) - 1] * 1000, 1),
        "cpu_s_per_saga": round(busy / n, 4),
        "idle_cpu_percent": round(100 * idle_cpu / idle, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m provisioning.bench_broker")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    candidates = [("filesystem (provisioning/broker.py)", "filesystem://")]
    try:
        import sqlalchemy  # noqa: F401

        candidates.append(("sqlalchemy on sqlite (kombu)", "sqla+sqlite:///{data}/broker.sqlite3"))
    except ImportError:
        print("SQLAlchemy is not installed: only the filesystem broker is measured.", file=sys.stderr)
    for name, url in candidates:
        data_dir = Path(tempfile.mkdtemp(prefix="bench-broker-"))
        try:
            print(
                json.dumps(measure(name, url.format(data=data_dir), data_dir, args.n, args.idle)), flush=True
            )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
