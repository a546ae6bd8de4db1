"""Where a service runs: a target host reached over SSH, or the built-in local target. Plain data and
plain processes (no Django, no Celery), so that the deploy code and the tests share one way in.

SSH is strict: the host key is pinned in a known_hosts file of the run (StrictHostKeyChecking=yes,
no first-use trust), and the private key never touches the disk: it goes into an ssh-agent of the run
through its standard input and the agent is stopped when the run ends.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class TargetUnavailable(Exception):
    """The local target cannot run services safely here; `message` says what to set up."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def ensure_service_user(name: str, home: Path) -> tuple[int, int]:
    """The unprivileged system user `name` (and its group), made when missing: no login shell, no
    password, home `home`. Answers (uid, gid). Needs root (to switch to it as well); without it
    TargetUnavailable says what to set up."""
    import grp
    import pwd

    if os.geteuid() != 0:
        # Switching to the service's user needs root too: a user made by hand would not help.
        raise TargetUnavailable(
            f"the local target runs each service as a system user of its own ({name} here), and this "
            f"worker runs as uid {os.geteuid()}, which can neither create that user nor switch to it. Run "
            "the local worker as root (it creates the user and drops to it for the service alone), or "
            "register a deploy host in the admin so that services run there."
        )
    try:
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        pass
    made = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home)]
        + ["--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if made.returncode not in (0, 9):  # 9: made meanwhile by another worker
        raise TargetUnavailable(
            f"the service's user {name} could not be created: {made.stderr.strip()[:200]}"
        )
    entry = pwd.getpwnam(name)
    grp.getgrgid(entry.pw_gid)
    return entry.pw_uid, entry.pw_gid


def remove_service_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", name], capture_output=True, timeout=30)


class HostUnreachable(Exception):
    """The target host did not answer over SSH (down, sshd stopped, wrong key): worth a retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """One place to deploy to. `name` is "local" for the built-in target."""

    name: str
    address: str = "127.0.0.1"
    port: int = 22
    user: str = ""
    host_key: str = ""
    private_key: str = ""  # a secret: never log it
    root: str = ""
    bind: str = "127.0.0.1"  # the address the services listen on, there
    service_user: str = ""  # the local target: the system user of this one service

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    def __repr__(self) -> str:  # never the key
        return f"<Target {self.name} {self.user}@{self.address}:{self.port}>"

    def describe(self) -> str:
        return "the local target" if self.is_local else f"host {self.name} ({self.address}:{self.port})"


@dataclass(frozen=True)
class Connection:
    """What ssh and Ansible need to reach a target within one run (no secret in it)."""

    known_hosts: Path
    agent_socket: str

    def ssh_options(self, target: Target) -> list[str]:
        return [
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "HostKeyAlias=target",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=no",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            "ConnectTimeout=5",
            "-p",
            str(target.port),
        ]

    def env(self) -> dict[str, str]:
        return {"SSH_AUTH_SOCK": self.agent_socket}


def inventory(target: Target, connection: Connection | None, python: str) -> str:
    """A one-host inventory for the run. Its values come from the host's registration (hostmasters),
    never from an order."""
    if target.is_local:
        return f"target ansible_connection=local ansible_python_interpreter={python}\n"
    args = " ".join(connection.ssh_options(target)[:-2])  # the port is ansible_port
    return (
        f"target ansible_host={target.address} ansible_port={target.port} ansible_user={target.user} "
        f"ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='{args}'\n"
    )


@contextmanager
def connect(target: Target, run_dir: Path) -> Iterator[Connection | None]:
    """For a remote target: the pinned known_hosts file and an ssh-agent holding its key, for the
    length of the block. For the local target: None."""
    if target.is_local:
        yield None
        return
    known_hosts = run_dir / "known_hosts"
    known_hosts.write_text(f"target {target.host_key.strip()}\n")
    socket = str(run_dir / "agent.sock")
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", socket],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # a worker killed mid-run leaves no agent holding the key
    )
    try:
        _wait_for(Path(socket), agent)
        added = subprocess.run(
            ["ssh-add", "-q", "-t", "3600", "-"],  # and the agent forgets it within the hour anyway
            input=target.private_key.encode(),
            env={**os.environ, "SSH_AUTH_SOCK": socket},
            capture_output=True,
            timeout=15,
        )
        if added.returncode != 0:
            raise HostUnreachable(f"the private key of {target.describe()} cannot be used: ask a hostmaster")
        yield Connection(known_hosts=known_hosts, agent_socket=socket)
    finally:
        try:
            os.killpg(agent.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        agent.wait(timeout=10)


def _die_with_parent() -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_for(socket: Path, agent: subprocess.Popen) -> None:
    import time

    deadline = time.monotonic() + 10
    while not socket.exists():
        if agent.poll() is not None or time.monotonic() > deadline:
            raise HostUnreachable("ssh-agent did not start on the worker")
        time.sleep(0.02)


def ssh(
    target: Target, connection: Connection, command: str, *, stdin: bytes = b"", timeout: float = 30
) -> subprocess.CompletedProcess:
    """Run `command` (a shell line, its parts quoted by the caller) on the target; raise
    HostUnreachable when ssh itself fails (exit 255)."""
    try:
        done = subprocess.run(
            ["ssh", *connection.ssh_options(target), f"{target.user}@{target.address}", command],
            input=stdin,
            capture_output=True,
            env={**os.environ, **connection.env()},
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise HostUnreachable(f"{target.describe()} did not answer over SSH within {timeout:.0f}s") from None
    if done.returncode == 255:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
        raise HostUnreachable(f"{target.describe()} cannot be reached over SSH: {reason[0][:200]}")
    return done


def write_local_file(path: Path, content: str, *, owner: tuple[int, int] | None) -> None:
    """A 0600 file owned by `owner` (uid, gid), replaced in one rename: a reader never sees half."""
    path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    if owner is not None:
        os.chown(path.parent, *owner)
    tmp = path.with_name(f".{path.name}.new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as handle:
        if owner is not None:
            os.fchown(handle.fileno(), *owner)
        handle.write(content)
    os.replace(tmp, path)


def write_remote_file(target: Target, connection: Connection, path: str, content: str) -> None:
    """Write a 0600 file on the target through ssh's standard input: its content is never on a
    command line, in a run folder or in Ansible."""
    folder = shlex.quote(str(Path(path).parent))
    tmp = shlex.quote(f"{path}.new")
    command = (
        f"umask 077 && mkdir -p {folder} && chmod 700 {folder} && cat > {tmp} && "
        f"mv -f {tmp} {shlex.quote(path)}"
    )
    done = ssh(target, connection, command, stdin=content.encode())
    if done.returncode != 0:
        raise HostUnreachable(
            f"{target.describe()} refused the service's env file: "
            f"{done.stderr.decode(errors='replace').strip()[:200]}"
        )


def remote_process_runs(target: Target, connection: Connection, pid: int, workdir: str) -> bool:
    """The pid runs on the target, from this service's checkout."""
    command = f'test "$(readlink /proc/{int(pid)}/cwd)" = {shlex.quote(str(Path(workdir) / "app"))}'
    return ssh(target, connection, command).returncode == 0
