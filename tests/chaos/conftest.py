"""The chaos suite: the service keeps its promises while its worker is killed and its servers restart.

How the suite gets servers of its own (the choice, and why):
- It restarts PostgreSQL and Redis, flushes Redis and kills workers, so it must never touch the servers
  other tests (or other people on the machine) use. The `private_servers` fixture below creates a
  PostgreSQL cluster (initdb into a temporary folder, run as the `postgres` OS user, trust auth on
  loopback, fsync on) and a `redis-server` with no persistence, each on a free loopback port.
- A pytest session sets its test database up once, for all its tests, against the server its
  DATABASE_URL names; when the whole suite runs in one process that is the shared server. So each
  drill runs in a pytest process of its own (tests/chaos/test_chaos.py starts it), whose environment
  points DATABASE_URL, CELERY_BROKER_URL and CELERY_RESULT_BACKEND at the private servers: its test
  database, its workers (`worker_env` builds theirs from its settings) and its beat all use them, with
  no settings patched at run time. Its DATA_DIR is a fresh folder, and its logs go to
  test-artifacts/chaos/ (TEST_ARTIFACTS_DIR), so it never wipes the outer run's.
- The drills live in tests/chaos/drills/drill_*.py: pytest does not collect them in the normal run
  (they are not test_*.py); the drill process is told to (`-o python_files=drill_*.py`). The drill
  process finds the servers again through CHAOS_PG_* / CHAOS_REDIS_* to restart them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import pytest

from tests.chaos.servers import PrivatePostgres, PrivateRedis
from tests.conftest import ARTIFACTS, ROOT

# What the outer run's own fixtures put into os.environ (its moto server, DNS server, nginx, clocks):
# the drill process starts its own and must not inherit these.
INHERITED_PREFIXES = ("AWS_", "DNS_NAMESERVERS", "ORDERS_", "LOCAL_PROVIDER_", "IMAGES_", "APPLICATIONS_")


@dataclass
class Servers:
    postgres: PrivatePostgres
    redis: PrivateRedis

    def env(self) -> dict[str, str]:
        broker = self.redis.url(0)
        return {
            "DATABASE_URL": self.postgres.url("prov_chaos"),
            "CELERY_BROKER_URL": broker,
            "CELERY_RESULT_BACKEND": broker,
            **self.postgres.to_env(),
            **self.redis.to_env(),
        }


@pytest.fixture(scope="module")
def private_servers():
    postgres = PrivatePostgres.create().start()
    redis = PrivateRedis.create().start()
    yield Servers(postgres=postgres, redis=redis)
    redis.remove()
    postgres.remove()


def run_drill(servers: Servers, drill: str, timeout: float) -> int:
    """Run tests/chaos/drills/<drill>.py in a pytest process of its own against the private servers;
    its output goes to ours. Answers its exit status."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
    env.update(servers.env())
    env["DATA_DIR"] = tempfile.mkdtemp(prefix="prov-chaos-data-")
    env["TEST_ARTIFACTS_DIR"] = str(ARTIFACTS / "chaos")
    env["PYTHONPATH"] = str(ROOT)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-o",
        "python_files=drill_*.py",
        "--reuse-db",  # the drills share one test database on the private server: migrated once
        "-p",
        "no:randomly",
        "-s",
        "-x",
        f"tests/chaos/drills/{drill}.py",
    ]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _interrupt(proc, drill, timeout)
    finally:
        shutil.rmtree(env["DATA_DIR"], ignore_errors=True)


def _interrupt(proc: subprocess.Popen, drill: str, timeout: float) -> None:
    # SIGINT lets pytest run its fixtures' teardown (workers, beat, instances, services).
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    pytest.fail(f"the drill {drill} did not end within {timeout:.0f}s")
