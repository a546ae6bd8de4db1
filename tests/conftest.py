"""Shared fixtures: the real services (PostgreSQL, Redis) and a real Celery worker process.

Tests that need a worker use `celery_worker` and `@pytest.mark.django_db(transaction=True)`, so that
what the test stores is committed and visible to the worker, which runs against the test database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
from django.conf import settings

from tests.fixtures.actors import api_actor
from tests.fixtures.orders import TEST_SETTINGS, stop_deployed_services

ROOT = Path(__file__).resolve().parent.parent
# A pytest run started by a test (tests/chaos) keeps its logs apart, so that it never wipes the
# logs of the run that started it.
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "test-artifacts")

pytest_plugins = [
    name
    for name in (
        "tests.fixtures.aws",
        "tests.fixtures.cloud_init",
        "tests.fixtures.dns",
        "tests.fixtures.nginx",
        "tests.fixtures.web",
    )
    if (ROOT / (name.replace(".", "/") + ".py")).exists()
]

# Short clocks so that crash and timeout paths finish within a test; the worker gets the same values.
ENGINE_SETTINGS = {
    "SAGA_HEARTBEAT_TIMEOUT": 3.0,
    "SAGA_REDRIVE_AFTER": 4.0,
    "SAGA_COUNTDOWN_MAX": 10.0,
    "SAGA_SWEEP_INTERVAL": 0.5,
    "SAGA_HELD_RECHECK": 2.0,
}


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2
        ):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def engine_clocks():
    for name, value in ENGINE_SETTINGS.items():
        setattr(settings, name, value)
    yield


def broker_kind() -> str:
    """ "redis" or "rabbitmq": the broker CELERY_BROKER_URL names (CI runs the engine's broker tests on
    both; chords always count on Redis, CELERY_RESULT_BACKEND)."""
    return "rabbitmq" if settings.CELERY_BROKER_URL.startswith(("amqp://", "pyamqp://")) else "redis"


@pytest.fixture(scope="session")
def real_services():
    """PostgreSQL and a real broker (Redis, or RabbitMQ with a Redis result backend) must be there: a
    test that needs them fails (never skips) without them."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("This test needs PostgreSQL: set DATABASE_URL (tests/run does).")
    if broker_kind() == "rabbitmq":
        if not _reachable(settings.CELERY_BROKER_URL, 5672):
            pytest.fail(f"RabbitMQ is not reachable at {settings.CELERY_BROKER_URL}.")
        if not settings.CELERY_RESULT_BACKEND.startswith("redis://"):
            pytest.fail("With RabbitMQ, set CELERY_RESULT_BACKEND=redis://... (chords count there).")
        return
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.fail("This test needs Redis or RabbitMQ: set CELERY_BROKER_URL (tests/run does).")
    if not _reachable(settings.CELERY_BROKER_URL, 6379):
        pytest.fail(f"Redis is not reachable at {settings.CELERY_BROKER_URL}.")


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


def stop_session(proc: subprocess.Popen | None) -> None:
    """TERM a process started in a session of its own, with everything in it; KILL what outlives 20 s."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class WorkerProcess:
    """A real `celery -A provisioning worker` against the test database, that tests may kill."""

    ready_marker = " ready."  # what the log says once per start, when the process is ready

    def __init__(self, env: dict[str, str], logdir: Path, name: str = "worker", concurrency: int = 2) -> None:
        self.env = env
        self.logdir = logdir
        self.name = name
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.logdir / f"{self.name}.log"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "provisioning",
            "worker",
            "-l",
            "info",
            "-c",
            str(self.concurrency),
            "-n",
            f"{self.name}-{os.getpid()}@%h",
            "--include",
            "tests.sagas,tests.sagas_versions",
            "--without-gossip",
            "--without-mingle",
        ]

    def start(self) -> WorkerProcess:
        self.starts += 1
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            self.argv(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.log_path.read_text()[-2000:]}")
            if self.log_path.read_text(errors="replace").count(self.ready_marker) >= self.starts:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the worker did not get ready: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_session(self.proc)


class BeatProcess(WorkerProcess):
    """A real `celery -A provisioning beat`: the sweeper's clock."""

    ready_marker = "beat: Starting..."

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "provisioning",
            "beat",
            "-l",
            "info",
            "-s",
            str(self.logdir / f"{self.name}-schedule"),
            "--pidfile=",
        ]


def lose_broker_messages() -> None:
    """Lose every message the broker holds, as a broker wiped or replaced would: Redis's database is
    flushed (this database only: others on the machine are not ours), RabbitMQ's queues of the
    service are purged (in the vhost CELERY_BROKER_URL names). Messages a worker holds already are
    not the broker's to lose."""
    if broker_kind() == "rabbitmq":
        from kombu import Connection

        with Connection(settings.CELERY_BROKER_URL) as conn:
            channel = conn.channel()
            for queue in settings.CELERY_TASK_QUEUES:
                queue(channel).declare()
                channel.queue_purge(queue.name)
    else:
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    if settings.CELERY_RESULT_BACKEND.startswith("redis://") and broker_kind() == "rabbitmq":
        import redis

        redis.Redis.from_url(settings.CELERY_RESULT_BACKEND).flushdb()  # chord counters too


def _flush_broker() -> None:
    if settings.CELERY_BROKER_URL.startswith(("redis://", "amqp://")):
        lose_broker_messages()


# Session fixtures that start an outside service and put its address into os.environ (and settings),
# so that the worker started after them sees it too.
ENVIRONMENT_FIXTURES = ("aws_endpoint", "dns_nameservers")


@pytest.fixture(scope="session")
def worker_env(request, django_db_setup) -> dict[str, str]:
    for name in ENVIRONMENT_FIXTURES:
        try:
            request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            pass  # that service's fixture module is not there
    env = dict(os.environ)
    env.update({name: str(value) for name, value in ENGINE_SETTINGS.items()})
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": settings.CELERY_RESULT_BACKEND,
            "DATA_DIR": str(settings.DATA_DIR),
            "SECRET_KEY": settings.SECRET_KEY,
            "PYTHONPATH": str(ROOT),
        }
    )
    # Services that any test's worker deploys on the local target go to the tests' folder, as the
    # tests' system users (removed when the session's worker stops), never to the machine's default.
    env.update({name: TEST_SETTINGS[name] for name in ("ORDERS_LOCAL_ROOT", "ORDERS_LOCAL_USER_PREFIX")})
    return env


@pytest.fixture(scope="session")
def _session_worker(real_services, worker_env, tmp_path_factory):
    _flush_broker()
    logdir = ARTIFACTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(worker_env, logdir).start()
    yield worker
    worker.stop()
    stop_deployed_services(Path(TEST_SETTINGS["ORDERS_LOCAL_ROOT"]))


@pytest.fixture
def celery_worker(_session_worker) -> WorkerProcess:
    """The session's worker, restarted if an earlier test killed it."""
    if _session_worker.proc.poll() is not None:
        _session_worker.start()
    return _session_worker


@pytest.fixture
def owner():
    """Olivia, owner of Acme: (user, API client)."""
    return api_actor("olivia", "Acme")


@pytest.fixture
def outsider():
    """Oscar of Globex, who must see nothing of Acme."""
    return api_actor("oscar", "Globex")


@pytest.fixture
def hostmaster():
    return api_actor("hilda", "Hosting", hostmaster=True)


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_sessionstart(session) -> None:
    shutil.rmtree(ARTIFACTS / "logs", ignore_errors=True)
