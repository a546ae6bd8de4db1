"""Keep the embedded service's processes up, as systemd does in production (Restart=on-failure).

Started by deploy/run-embedded once the virtual environment, the database and the admin user are
ready. It starts web (gunicorn), the Celery worker, beat and, when the `nginx` program exists, the
nginx instance that environment orders route to. A process that exits is started again after a short
backoff, with a line naming it and the last line of its log. Only Ctrl-C (SIGINT, SIGTERM, SIGHUP) or a
process that keeps stopping (RESTARTS_PER_MINUTE exits within a minute) stops the service; an
optional process (nginx) that keeps stopping is given up alone, and the rest stays up.

Plain Python (no Django): it must keep running whatever the service's code does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
RESTARTS_PER_MINUTE = 5
BACKOFF = (1, 2, 4, 8, 10)
STOP_TIMEOUT = 60.0


def say(message: str) -> None:
    print(f"[supervisor] {message}", file=sys.stderr, flush=True)


def last_log_line(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            lines = [line for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][-400:] if lines else "(the log is empty)"


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def stop_stale(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(pid_file.parent).encode() not in cmdline:
        return  # the pid was reused by another program (nginx names its prefix in its title)
    say(f"stopping the nginx (pid {pid}) an earlier start left running")
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


@dataclass
class Program:
    name: str
    argv: list[str]
    log: Path
    # A process in a session of its own does not get the terminal's Ctrl-C (the worker: a signal to
    # its pool processes while one holds the pool's lock leaves the worker hanging at exit); it is
    # stopped by a TERM to its main process, a warm shutdown.
    own_session: bool = False
    optional: bool = False
    # Where the program writes its pid (nginx): one left running by a supervisor that was killed
    # holds the port, so it is stopped before ours starts.
    pid_file: Path | None = None
    process: subprocess.Popen | None = None
    exits: list[float] = field(default_factory=list)
    restart_at: float | None = None
    given_up: bool = False

    def start(self) -> None:
        if self.pid_file is not None:
            stop_stale(self.pid_file)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_session,
            )
        self.restart_at = None

    def reap_group(self) -> None:
        # The pool processes of a worker that was killed: none may go on holding a task.
        if self.own_session and self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def programs(data_dir: Path, port: int) -> list[Program]:
    logs = data_dir / "logs"
    found = [
        Program(
            "web",
            [
                str(VENV_BIN / "gunicorn"),
                "provisioning.wsgi:application",
                "-c",
                "deploy/gunicorn.conf.py",
                "-b",
                f"127.0.0.1:{port}",
            ],
            logs / "web.log",
        ),
        Program(
            "worker",
            [str(VENV_BIN / "celery"), "-A", "provisioning", "worker", "-l", "info", "-c", "2"],
            logs / "worker.log",
            own_session=True,
        ),
        Program(
            "beat",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "provisioning",
                "beat",
                "-l",
                "info",
                "-s",
                str(data_dir / "celerybeat-schedule"),
            ],
            logs / "beat.log",
        ),
    ]
    nginx = os.environ.get("ORDERS_NGINX_BINARY") or shutil.which("nginx") or "/usr/sbin/nginx"
    orders_dir = Path(os.environ.get("ORDERS_DIR") or data_dir / "orders")
    prefix = Path(os.environ.get("ORDERS_NGINX_PREFIX") or orders_dir / "nginx")
    if Path(nginx).exists() and (prefix / "nginx.conf").exists():
        found.append(
            Program(
                "nginx",
                [
                    nginx,
                    "-p",
                    str(prefix),
                    "-c",
                    str(prefix / "nginx.conf"),
                    "-e",
                    str(prefix / "logs" / "error.log"),
                    "-g",
                    "daemon off;",
                ],
                logs / "nginx.log",
                optional=True,
                pid_file=prefix / "nginx.pid",
            )
        )
    else:
        say(
            f"nginx is not installed ({nginx} not found): environment orders cannot route their "
            "services (their proxy step says so). Install Debian's nginx and start again to have them."
        )
    return found


class Supervisor:
    def __init__(self, members: list[Program]) -> None:
        self.members = members
        self.stopping = False

    def _on_signal(self, signum: int, _frame) -> None:
        self.stopping = True

    def run(self, port: int) -> int:
        # SIGHUP too: a closed terminal must not leave the worker (in a session of its own) behind.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        return self.run_members(announce=lambda: self._announce(port))

    def run_members(self, announce=None) -> int:
        """Start every member and keep them up until a signal or a member that keeps stopping."""
        for member in self.members:
            member.start()
        if announce:
            announce()
        failure = None
        while not self.stopping and failure is None:
            time.sleep(0.2)
            failure = self._tick()
        self._stop_all()
        if failure:
            say(failure)
            return 1
        say("stopped.")
        return 0

    def _announce(self, port: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.stopping:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        print(
            f"\nThe provisioning service runs at http://127.0.0.1:{port}/  "
            "(admin: /admin/, API: /api/, schema: /api/schema/)\n"
            f"Logs: {self.members[0].log.parent}/. Try a saga: .venv/bin/python manage.py run_demo_saga. "
            "Ctrl-C stops everything.",
            flush=True,
        )

    def _tick(self) -> str | None:
        now = time.monotonic()
        for member in self.members:
            if member.given_up or self.stopping:
                continue
            if member.restart_at is not None:
                if now >= member.restart_at:
                    member.start()
                    say(f"{member.name} started again (pid {member.process.pid}).")
                continue
            code = member.process.poll()
            if code is None:
                continue
            member.reap_group()
            member.exits = [t for t in member.exits if now - t < 60] + [now]
            why = f"{member.name} {exit_reason(code)}; its last log line: {last_log_line(member.log)}"
            if len(member.exits) >= RESTARTS_PER_MINUTE:
                if member.optional:
                    member.given_up = True
                    say(
                        f"{why}. It stopped {len(member.exits)} times within a minute: given up (see {member.log})."
                    )
                    continue
                return (
                    f"{why}. It stopped {len(member.exits)} times within a minute: stopping the service "
                    f"(see {member.log})."
                )
            delay = BACKOFF[min(len(member.exits), len(BACKOFF)) - 1]
            member.restart_at = now + delay
            say(f"{why}. Starting it again in {delay} s.")
        return None

    def _stop_all(self) -> None:
        running = [m for m in self.members if m.process is not None and m.process.poll() is None]
        for member in running:
            try:
                member.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for member in running:
            try:
                member.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{member.name} did not stop within {STOP_TIMEOUT:.0f} s: killing it.")
                member.process.kill()
                member.process.wait()
            member.reap_group()


def main() -> int:
    data_dir = Path(os.environ["DATA_DIR"])
    port = int(os.environ.get("PORT", "8000"))
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    return Supervisor(programs(data_dir, port)).run(port)


if __name__ == "__main__":
    sys.exit(main())
