"""Runs the playbooks in provisioning/orders/playbooks with ansible-runner, against this host.

Each run gets a folder of its own (operation + service), created 0700 and removed when the run ends,
whatever happens: ansible-runner writes the environment it was given into its artifacts, and that
environment carries the service's secrets. Secrets never go in as extra vars (they would be on the
command line).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner

from provisioning.orders import conf

log = logging.getLogger("provisioning.orders")

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"


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

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


def _scrub(text: str, secret_env: dict[str, str] | None) -> str:
    """Belt and braces: no secret value reaches a message, even if a task echoed one."""
    for blob in (secret_env or {}).values():
        for line in blob.splitlines():
            value = line.partition("=")[2].strip("'\"")
            if len(value) >= 6:
                text = text.replace(value, "********")
    return text


def _search_path() -> str:
    # The worker may run without the virtualenv on PATH: put the ansible-playbook installed beside
    # this Python first, as ansible-core is one of our dependencies.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])


def run_playbook(
    name: str,
    *,
    ident: str,
    extravars: dict,
    secret_env: dict[str, str] | None = None,
) -> PlaybookResult:
    """Run playbook `name`; raise PlaybookFailed with the failed tasks' messages."""
    run_dir = conf.runs_dir() / ident
    shutil.rmtree(run_dir, ignore_errors=True)  # a run that crashed before its cleanup
    run_dir.mkdir(parents=True, mode=0o700)
    tmp = run_dir / "tmp"
    tmp.mkdir(mode=0o700)
    envvars = {
        "PATH": _search_path(),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(tmp),
        "ANSIBLE_REMOTE_TEMP": str(tmp),
        "ANSIBLE_KEEP_REMOTE_FILES": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        **(secret_env or {}),
    }
    try:
        runner = ansible_runner.run(
            private_data_dir=str(run_dir),
            playbook=str(PLAYBOOKS / name),
            inventory="localhost ansible_connection=local",
            extravars=extravars,
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
                result.failures.append(f"{data.get('task', '?')}: host unreachable")
            elif kind == "runner_on_ok" and data.get("task_action") in ("debug", "ansible.builtin.debug"):
                result.messages.append(str(res.get("msg", "")))
        if not result.failures and runner.rc:
            # No task failed: ansible itself refused (syntax, a missing module); its last words say why.
            result.failures.append(runner.stdout.read()[-600:].strip())
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if not result.ok:
        reason = "; ".join(result.failures) or f"ansible ended {result.status} (rc {result.rc})"
        reason = _scrub(reason, secret_env)
        log.warning("playbook %s (%s) failed: %s", name, ident, reason)
        raise PlaybookFailed(reason)
    return result


def deploy_service(
    *,
    ident: str,
    workdir: str,
    repository_url: str,
    version: str,
    port: int,
    health_path: str,
    command: list[str],
    env_file: str,
) -> dict:
    """Deploy and check one service; answers {"pid": int, "commit": str}."""
    result = run_playbook(
        "deploy_service.yml",
        ident=ident,
        extravars={
            "workdir": workdir,
            "repository_url": repository_url,
            "version": version,
            "port": port,
            "health_path": health_path,
            "command": command,
        },
        secret_env={"ORDERS_SERVICE_ENV": env_file},
    )
    deployed = json.loads(result.messages[-1])
    return {"pid": int(deployed["pid"]), "commit": deployed.get("commit") or ""}


def stop_service(*, ident: str, workdir: str) -> None:
    run_playbook("stop_service.yml", ident=ident, extravars={"workdir": workdir})
