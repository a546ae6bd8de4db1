"""Runs the playbooks in provisioning/orders/playbooks with ansible-runner, against this host.

Order data is data: every value a playbook gets goes into a vars file of the run where each string is
tagged `!unsafe`, so Ansible never renders it as a template (`{{ lookup('pipe', ...) }}` in a
repository URL stays text). The order's validation refuses such characters too; this is the second
wall.

No secret goes through Ansible at all: ansible-runner records the environment it was given in its
artifacts (`artifacts/<ident>/command`), extra vars are on the command line, and module arguments are
written into remote temp files. The service's env file is written 0600 by the worker itself (through
ssh's standard input on a remote host) before the playbook starts the service.

Each run gets a folder of its own (operation + service), created 0700 and removed when the run ends,
whatever happens. While it runs, its process holds a lock on the folder's `.lock`: a folder whose lock
nobody holds was left by a killed worker, and `remove_stale_runs` (at worker start) removes it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from provisioning.orders import conf, targets

log = logging.getLogger("provisioning.orders")

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
LOCAL = targets.Target(name="local")


class PlaybookFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class PlaybookResult:
    status: str
    rc: int
    failures: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # debug task messages, in order
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


class Unsafe(str):
    """A string Ansible must take as it is: dumped as `!unsafe`, never templated."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


def _unsafe(dumper: yaml.SafeDumper, value: Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(value), style="'")


_UnsafeDumper.add_representer(Unsafe, _unsafe)


def as_unsafe(value: Any) -> Any:
    """Every string inside `value` (lists and mappings included) marked unsafe; other scalars kept."""
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, list | tuple):
        return [as_unsafe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): as_unsafe(item) for key, item in value.items()}
    return value


def unsafe_vars_yaml(variables: dict) -> str:
    return yaml.dump(as_unsafe(variables), Dumper=_UnsafeDumper, default_flow_style=False)


def _scrub(text: str, secrets: list[str] | None) -> str:
    """Belt and braces: no secret value reaches a message, even if a task echoed one."""
    for value in secrets or ():
        if len(value) >= 6:
            text = text.replace(value, "********")
    return text


def _lock(run_dir: Path) -> int:
    fd = os.open(run_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_stale_runs() -> list[str]:
    """Remove the run folders no live process holds (a worker killed mid-playbook leaves its folder
    behind, and the same step may never run again). Answers the names removed."""
    root = conf.runs_dir()
    removed = []
    for run_dir in sorted(root.iterdir()) if root.is_dir() else ():
        try:
            fd = os.open(run_dir / ".lock", os.O_RDWR)
        except FileNotFoundError:
            fd = None  # killed before it took its lock, or not a run folder of ours
        except OSError:
            continue
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live run
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir.name)
        finally:
            if fd is not None:
                os.close(fd)
    if removed:
        log.info("removed %d stale ansible run folder(s)", len(removed))
    return removed


def _search_path() -> str:
    # The worker may run without the virtualenv on PATH: put the ansible-playbook installed beside
    # this Python first, as ansible-core is one of our dependencies.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])


def run_playbook(
    name: str,
    *,
    ident: str,
    extravars: dict,
    target: targets.Target = LOCAL,
    secrets: list[str] | None = None,
    before: Callable[[targets.Connection | None], None] | None = None,
) -> PlaybookResult:
    """Run playbook `name` on `target` with `extravars` as unsafe values; `before` runs first with
    the run's connection. Raise HostUnreachable when the target cannot be reached, PlaybookFailed
    with the failed tasks' messages (`secrets` are masked in them)."""
    run_dir = conf.runs_dir() / ident
    shutil.rmtree(run_dir, ignore_errors=True)  # a run that crashed before its cleanup
    run_dir.mkdir(parents=True, mode=0o700)
    lock = _lock(run_dir)
    try:
        with targets.connect(target, run_dir) as connection:
            if before is not None:
                before(connection)
            result = _run(name, run_dir, extravars, target, connection)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.close(lock)
    if result.unreachable:
        raise targets.HostUnreachable(f"{target.describe()} cannot be reached over SSH")
    if not result.ok:
        reason = "; ".join(result.failures) or f"ansible ended {result.status} (rc {result.rc})"
        reason = _scrub(reason, secrets)
        log.warning("playbook %s (%s) failed: %s", name, ident, reason)
        raise PlaybookFailed(reason)
    return result


def _run(
    name: str, run_dir: Path, extravars: dict, target: targets.Target, connection: targets.Connection | None
) -> PlaybookResult:
    tmp = run_dir / "tmp"
    tmp.mkdir(mode=0o700)
    vars_file = run_dir / "order-vars.yml"
    fd = os.open(vars_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(unsafe_vars_yaml(extravars))
    envvars = {
        "PATH": _search_path(),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp),
        "ANSIBLE_KEEP_REMOTE_FILES": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "1",
        # No master connection that outlives the run (a host taken out must be seen as gone), and
        # modules go through the pipe rather than temp files on the host.
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_TIMEOUT": "10",
    }
    if target.is_local:
        envvars["ANSIBLE_REMOTE_TEMP"] = str(tmp)
    else:
        envvars.update(connection.env())
    runner = ansible_runner.run(
        private_data_dir=str(run_dir),
        playbook=str(PLAYBOOKS / name),
        inventory=targets.inventory(target, connection, sys.executable),
        cmdline=f"-e @{vars_file}",
        envvars=envvars,
        suppress_env_files=True,
        quiet=True,
        ident="run",
    )
    result = PlaybookResult(status=runner.status, rc=runner.rc or 0)
    for event in runner.events:
        kind = event.get("event")
        data = event.get("event_data", {})
        res = data.get("res") or {}
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            msg = res.get("msg") or res.get("stderr") or "failed"
            result.failures.append(f"{data.get('task', '?')}: {str(msg)[:300]}")
        elif kind == "runner_on_unreachable":
            result.unreachable = True
            result.failures.append(f"{data.get('task', '?')}: host unreachable")
        elif kind == "runner_on_ok" and data.get("task_action") in ("debug", "ansible.builtin.debug"):
            result.messages.append(str(res.get("msg", "")))
    if not result.failures and runner.rc:
        # No task failed: ansible itself refused (syntax, a missing module); its last words say why.
        result.failures.append(runner.stdout.read()[-600:].strip())
    return result


def deploy_service(
    *,
    ident: str,
    target: targets.Target = LOCAL,
    workdir: str,
    repository_url: str,
    version: str,
    port: int,
    health_path: str,
    command: list[str],
    env_file: str,
    secrets: list[str] | None = None,
) -> dict:
    """Deploy and check one service; answers {"pid": int, "commit": str}. The env file is written
    before the playbook, not by Ansible, so that no secret passes through a run."""

    def write_env(connection: targets.Connection | None) -> None:
        path = f"{workdir}/home/service.env"
        if not target.is_local:
            targets.write_remote_file(target, connection, path, env_file)
            return
        owner = None
        if target.service_user:
            owner = targets.ensure_service_user(target.service_user, Path(workdir) / "home")
        Path(workdir).mkdir(parents=True, mode=0o755, exist_ok=True)
        targets.write_local_file(Path(path), env_file, owner=owner)

    result = run_playbook(
        "deploy_service.yml",
        ident=ident,
        target=target,
        before=write_env,
        extravars={
            "workdir": workdir,
            "service_user": target.service_user,
            "repository_url": repository_url,
            "version": version,
            "port": port,
            "health_path": health_path,
            "command": command,
        },
        secrets=secrets,
    )
    deployed = json.loads(result.messages[-1])
    return {"pid": int(deployed["pid"]), "commit": deployed.get("commit") or ""}


def stop_service(*, ident: str, workdir: str, target: targets.Target = LOCAL) -> None:
    run_playbook("stop_service.yml", ident=ident, target=target, extravars={"workdir": workdir})


def process_runs(*, ident: str, target: targets.Target, pid: int, workdir: str) -> bool:
    """Whether `pid` runs on a remote target from the service's checkout (over SSH, no Ansible)."""
    run_dir = conf.runs_dir() / ident
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, mode=0o700)
    lock = _lock(run_dir)
    try:
        with targets.connect(target, run_dir) as connection:
            return targets.remote_process_runs(target, connection, pid, workdir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.close(lock)
