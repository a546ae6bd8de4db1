"""The embedded service as a new user runs it: the README's run command on a fresh copy of the
repository (its own .venv and DATA_DIR, no DATABASE_URL, no broker URL), driven over HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.fixtures.net import free_port

ROOT = Path(__file__).resolve().parents[2]
# What a user's shell has; nothing of the test run's own settings (database, broker, clocks) leaks in.
KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "USER", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")


def fresh_copy(target: Path) -> Path:
    """The repository's files as a clone would have them (tracked and new ones, nothing ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def processes_of(data_dir: Path) -> list[int]:
    """Pids of every process that runs with this DATA_DIR in its environment (web, worker and its
    pool, beat, the supervisor; nginx and local instances do not carry it)."""
    wanted = f"DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class EmbeddedService:
    def __init__(self, repo: Path, data_dir: Path, **environment: str) -> None:
        self.repo = repo
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k in KEPT_ENVIRONMENT}
        self.env.update(
            DATA_DIR=str(data_dir),
            PORT=str(self.port),
            ORDERS_PROXY_LISTEN=f"127.0.0.1:{free_port()}",
            **environment,
        )
        self.token = ""
        self.process: subprocess.Popen | None = None
        self.output = data_dir.parent / f"{data_dir.name}-run.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 240.0) -> None:
        offset = self.output.stat().st_size if self.output.exists() else 0
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [str(self.repo / "deploy" / "run-embedded")],
                cwd=self.repo,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while "runs at" not in self.printed(offset):
            assert self.process.poll() is None, self.printed()
            assert time.monotonic() < deadline, self.printed()
            time.sleep(0.3)
        found = re.search(r"API token: ([0-9a-f]+)", self.printed(offset))
        if found:
            self.token = found.group(1)

    def printed(self, offset: int = 0) -> str:
        return self.output.read_bytes()[offset:].decode(errors="replace") if self.output.exists() else ""

    def stop(self, timeout: float = 120.0) -> int:
        """Ctrl-C, as a user stops it: SIGINT to the command's process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def crash(self) -> None:
        """Every process of the service SIGKILLed at once, as a machine that loses power: the
        command's process group (supervisor, web, beat, nginx, which hides its environment) and
        whatever else carries the DATA_DIR (the worker in its own session, its pool)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in processes_of(self.data_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)

    def worker_pid(self) -> int:
        """The worker's main process (its pool processes are its children)."""
        for pid in processes_of(self.data_dir):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"worker" in cmdline and parent == self.process.pid:
                return pid
        raise AssertionError("no worker process runs")

    def api(
        self, method: str, path: str, body: dict | None = None, timeout: float = 30.0
    ) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health/", timeout=10) as answer:
                return answer.status == 200
        except OSError:
            return False

    def manage(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.repo / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log_lines(self) -> list[str]:
        lines = []
        for path in sorted((self.data_dir / "logs").glob("*.log")):
            lines.extend(path.read_text(errors="replace").splitlines())
        return lines
