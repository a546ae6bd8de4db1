"""Fixtures of the production checks: a real gunicorn started with deploy/gunicorn.conf.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS
from tests.fixtures.net import free_port, wait_listening
from tests.fixtures.web import GUNICORN_ARGV, ServiceProcess


@contextmanager
def _gunicorn(env: dict[str, str], logdir: Path) -> Iterator[str]:
    """Only listening is awaited: some tests start it against a database or broker that is down."""
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1", "WEB_THREADS": "2"}
    web = ServiceProcess("gunicorn", GUNICORN_ARGV, env, logdir).start()
    try:
        try:
            wait_listening(port, timeout=30)
        except RuntimeError:
            raise RuntimeError(f"gunicorn did not start: {web.log_tail()}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        web.stop()


@pytest.fixture
def gunicorn(worker_env) -> Callable:
    """`with gunicorn(CELERY_BROKER_URL=...) as base_url:` a real web process on the test database,
    with the given environment changes; its log goes to test-artifacts/logs/gunicorn.log."""
    logdir = ARTIFACTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)

    def start(**overrides: str):
        env = {**worker_env, **overrides}
        return _gunicorn({k: v for k, v in env.items() if v is not None}, logdir)

    return start
