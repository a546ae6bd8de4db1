"""Private PostgreSQL and Redis servers of the chaos suite, on free loopback ports, that it may restart,
flush and stop without disturbing anybody else on the machine.

The suite's outer process creates them; the drill process it starts finds them again through the
environment (`to_env` / `from_env`) to restart them mid-run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.fixtures.net import free_port


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout}s")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def postgres_bin() -> Path:
    """The newest PostgreSQL installed under /usr/lib/postgresql (Debian's layout)."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")), key=lambda p: int(p.parts[-3])
    )
    if not versions:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql")
    return versions[-1].parent


@dataclass
class PrivatePostgres:
    """A cluster of its own: initdb into a temporary folder owned by the postgres OS user (the server
    refuses to run as root), trust authentication on loopback, fsync on."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def _as_postgres(self, program: str, *args: str, timeout: float = 120) -> None:
        cmd = ["runuser", "-u", "postgres", "--", str(postgres_bin() / program), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {args[:2]} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")

    @classmethod
    def create(cls) -> PrivatePostgres:
        root = Path(tempfile.mkdtemp(prefix="prov-chaos-pg-"))
        os.chmod(root, 0o755)
        shutil.chown(root, "postgres", "postgres")
        server = cls(root=root, port=free_port())
        server._as_postgres(
            "initdb",
            "-D",
            str(server.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        return server

    def _ctl(self, action: str, *args: str) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=on -c max_connections=200"
        )
        self._as_postgres(
            "pg_ctl", action, "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, *args
        )

    def start(self) -> PrivatePostgres:
        self._ctl("start", "-w", "-t", "60")
        return self

    def restart(self) -> None:
        """An immediate shutdown (as a crash: no checkpoint, recovery on start), then start again."""
        self._ctl("restart", "-m", "immediate", "-w", "-t", "60")
        _wait(lambda: _listening(self.port), 30, "PostgreSQL did not listen again")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("stop", "-m", "fast", "-w", "-t", "60")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def to_env(self) -> dict[str, str]:
        return {"CHAOS_PG_ROOT": str(self.root), "CHAOS_PG_PORT": str(self.port)}

    @classmethod
    def from_env(cls) -> PrivatePostgres:
        return cls(root=Path(os.environ["CHAOS_PG_ROOT"]), port=int(os.environ["CHAOS_PG_PORT"]))


@dataclass
class PrivateRedis:
    """`redis-server` with no persistence on a loopback port: a restart loses every message, as a
    crash of an unpersisted broker does."""

    root: Path
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def pidfile(self) -> Path:
        return self.root / "redis.pid"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    @classmethod
    def create(cls) -> PrivateRedis:
        return cls(root=Path(tempfile.mkdtemp(prefix="prov-chaos-redis-")), port=free_port())

    def start(self) -> PrivateRedis:
        argv = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--pidfile",
            str(self.pidfile),
            "--dir",
            str(self.root),
        ]
        with open(self.root / "redis.log", "ab") as log:
            # Its own session: it outlives the process that (re)started it; stop() finds it by its pid file.
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait(self._answers, 20, "redis-server did not answer")
        return self

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def flush(self) -> None:
        self.client().flushall()

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGKILL)  # as a crash: whatever it held is gone
        except ProcessLookupError:
            pass
        _wait(lambda: not _listening(self.port), 20, "redis-server did not stop")
        self.pidfile.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def to_env(self) -> dict[str, str]:
        return {"CHAOS_REDIS_ROOT": str(self.root), "CHAOS_REDIS_PORT": str(self.port)}

    @classmethod
    def from_env(cls) -> PrivateRedis:
        return cls(root=Path(os.environ["CHAOS_REDIS_ROOT"]), port=int(os.environ["CHAOS_REDIS_PORT"]))
