"""Fixtures of the environment-order tests: local git repositories of tiny HTTP services, a worker
that routes through the test nginx, and a cleanup that leaves no deployed service running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from provisioning.services import api_user_create_or_update

APP = '''\
"""A tiny service: answers every GET with its name, its version and the path it was asked for."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = {name!r}
VERSION = {version!r}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{
            "name": NAME,
            "version": VERSION,
            "path": self.path,
            "has_database_password": bool(os.environ.get("DATABASE_PASSWORD")),
        }}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''

TEST_SETTINGS = {"ORDERS_REPOSITORY_SCHEMES": "https,ssh,file"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


class ServiceRepo:
    """A local git repository of one tiny service; each `release` commits and tags a version."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        path.mkdir(parents=True)
        _git(path, "init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def release(self, version: str) -> str:
        (self.path / "app.py").write_text(APP.format(name=self.name, version=version))
        _git(self.path, "add", "app.py")
        _git(self.path, "commit", "-q", "-m", f"{self.name} {version}")
        _git(self.path, "tag", version)
        return _git(self.path, "rev-parse", "HEAD")


@pytest.fixture
def service_repo(tmp_path):
    def make(name: str, *versions: str) -> ServiceRepo:
        repo = ServiceRepo(tmp_path / "repos" / name, name)
        for version in versions:
            repo.release(version)
        return repo

    return make


@pytest.fixture(autouse=True)
def orders_settings():
    for name, value in TEST_SETTINGS.items():
        os.environ[name] = value
        setattr(settings, name, value)
    yield
    for name in TEST_SETTINGS:
        os.environ.pop(name, None)
        delattr(settings, name)


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_deployed_services() -> None:
    from provisioning.orders import conf

    root = conf.environments_dir()
    for pidfile in root.glob("*/*/service.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            os.killpg(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def orders_worker(nginx_proxy, orders_settings, celery_worker):
    """The session worker, restarted once with the test nginx and the test repository schemes in its
    environment (it may have been started by other tests before they were set)."""
    wanted = {
        name: os.environ[name]
        for name in ("ORDERS_NGINX_PREFIX", "ORDERS_PROXY_LISTEN", "ORDERS_NGINX_BINARY")
    }
    wanted.update(TEST_SETTINGS)
    if any(celery_worker.env.get(name) != value for name, value in wanted.items()):
        celery_worker.stop()
        celery_worker.env.update(wanted)
        celery_worker.start()
    yield celery_worker
    _stop_deployed_services()
    from provisioning.orders import proxy

    for site in (nginx_proxy.prefix / "sites").glob("env-*.conf"):
        site.unlink()
    proxy.reload()


@pytest.fixture
def leave_no_service():
    yield
    _stop_deployed_services()


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def owner():
    user, token = api_user_create_or_update(username="olivia", customer_name="Acme")
    return user, client_for(token)


@pytest.fixture
def outsider():
    user, token = api_user_create_or_update(username="oscar", customer_name="Globex")
    return user, client_for(token)


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")
