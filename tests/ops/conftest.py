"""Fixtures of the production checks: a real gunicorn started with deploy/gunicorn.conf.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, ROOT
from tests.fixtures.net import free_port, wait_listening


@contextmanager
def _gunicorn(env: dict[str, str], logfile: Path) -> Iterator[str]:
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1", "WEB_THREADS": "2"}
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "provisioning.wsgi:application",
        "-c",
        "deploy/gunicorn.conf.py",
    ]
    with open(logfile, "a") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_listening(port, timeout=30)
        except RuntimeError:
            raise RuntimeError(f"gunicorn did not start: {logfile.read_text()[-3000:]}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def gunicorn(worker_env) -> Callable:
    """`with gunicorn(CELERY_BROKER_URL=...) as base_url:` a real web process on the test database,
    with the given environment changes; its log goes to test-artifacts/logs/gunicorn.log."""
    logdir = ARTIFACTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)

    def start(**overrides: str):
        env = {**worker_env, **overrides}
        return _gunicorn({k: v for k, v in env.items() if v is not None}, logdir / "gunicorn.log")

    return start
