"""The local target runs customer code as an unprivileged system user of its own per service: a
deployed service that tries to read the secret key, the database, DATA_DIR, another service's env file
or the worker's environment is refused by the operating system (the test ships such a service and
reads what it reports)."""

from __future__ import annotations

import io
import json
import os
import pwd
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from provisioning.orders import conf, proxy
from provisioning.orders.models import ServiceDeployment
from tests.conftest import ROOT
from tests.fixtures.orders import _git

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

PROBE = '''\
"""Tries to read what customer code must never read, and answers what the system said."""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGETS = json.loads({targets!r})


def attempt(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
        return "read"
    except OSError as exc:
        return type(exc).__name__


def probe():
    found = {{name: attempt(path) for name, path in TARGETS.items()}}
    found["own env file"] = attempt(os.path.join(os.environ["HOME"], "service.env"))
    found["uid"] = os.getuid()
    found["worker environment"] = sorted(
        k for k in ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "DATA_DIR") if k in os.environ
    )
    found["has_database_password"] = bool(os.environ.get("DATABASE_PASSWORD"))
    return found


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(probe()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler).serve_forever()
'''


def order_yaml(env: str, url: str) -> str:
    return f"""\
action: update
environment_id: "{env}"
api:
  domains: [api.{env}.example.com]
  services:
    - id: one
      path: /one
      repository: {{url: '{url}', version: probe-one}}
      type: python
    - id: two
      path: /two
      repository: {{url: '{url}', version: probe-two}}
      type: python
"""


@pytest.fixture
def data_dir_files():
    """A secret key file and a database in DATA_DIR, as the embedded default has them (the test
    settings use environment variables and PostgreSQL instead)."""
    made = []
    for name, mode in (("secret_key", 0o600), ("db.sqlite3", 0o644)):
        path = Path(settings.DATA_DIR) / name
        if not path.exists():
            path.write_text("not for services")
            path.chmod(mode)
            made.append(path)
    yield
    for path in made:
        path.unlink(missing_ok=True)


def test_a_service_on_the_local_target_cannot_read_the_workers_secrets_or_another_service(
    orders_worker, service_repo, tmp_path, owner, data_dir_files
):
    env = f"env-{uuid.uuid4().hex[:6]}"
    root = conf.environments_dir() / env
    data = Path(settings.DATA_DIR)
    worker_pids = [orders_worker.proc.pid, *_children(orders_worker.proc.pid)]
    targets = {
        "secret key": str(data / "secret_key"),
        "database": str(data / "db.sqlite3"),
        "data folder": str(data),
        **{f"worker environ {pid}": f"/proc/{pid}/environ" for pid in worker_pids},
    }
    repo = service_repo("probe")
    for sid, other in (("one", "two"), ("two", "one")):
        # Each service probes the other's env file; one repository, a branch each.
        probe = {**targets, "other env file": str(root / other / "home" / "service.env")}
        (repo.path / "app.py").write_text(PROBE.format(targets=json.dumps(probe)))
        _git(repo.path, "add", "app.py")
        _git(repo.path, "commit", "-qm", f"probe {sid}")
        _git(repo.path, "branch", "-f", f"probe-{sid}")
    text = order_yaml(env, repo.url)
    order = tmp_path / "order.yml"
    order.write_text(text)
    out = io.StringIO()
    call_command("process_order", str(order), "--customer", "Acme", stdout=out)
    assert "succeeded" in out.getvalue(), out.getvalue()

    users = set()
    for sid in ("one", "two"):
        status, _, body = proxy.request(f"api.{env}.example.com", f"/{sid}")
        assert status == 200, body
        seen = json.loads(body)
        deployment = ServiceDeployment.objects.get(service_id=sid)
        user = pwd.getpwuid(seen.pop("uid"))
        users.add(user.pw_name)
        assert user.pw_uid != 0 and user.pw_uid != os.getuid() and user.pw_name.startswith("pvt-")
        assert user.pw_dir == str(Path(deployment.workdir) / "home")
        assert seen.pop("own env file") == "read" and seen.pop("has_database_password") is True
        assert seen.pop("worker environment") == [], "the service inherited the worker's environment"
        assert seen == {name: "PermissionError" for name in seen} and len(seen) >= 5, seen
        env_file = Path(deployment.workdir) / "home" / "service.env"
        assert env_file.stat().st_uid == user.pw_uid and env_file.stat().st_mode & 0o777 == 0o600
    assert len(users) == 2, "each service runs as a user of its own"


def test_without_a_way_to_make_the_services_user_it_says_what_to_set_up():
    script = (
        "from pathlib import Path\n"
        "from provisioning.orders import targets\n"
        "try:\n"
        "    targets.ensure_service_user('pvt-nobody-here', Path('/tmp/x'))\n"
        "except targets.TargetUnavailable as exc:\n"
        "    print(exc.message)\n"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Run the local worker as root" in done.stdout and "register a deploy host" in done.stdout


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_service_deployed_inside_data_dir_before_moves_to_the_local_targets_folder(owner):
    from provisioning.orders import hosts, services
    from provisioning.orders.models import Environment

    environment = Environment.objects.create(key="old-env", customer=owner[0].memberships.get().customer)
    old = Path(settings.DATA_DIR) / "orders" / "environments" / "old-env" / "api"
    (old / "app").mkdir(parents=True)
    (old / "service.env").write_text("DATABASE_PASSWORD='from-before'\n")
    deployment = ServiceDeployment.objects.create(
        environment=environment,
        service_id="api",
        section="api",
        path="/",
        repository_url="https://git.example.com/a",
        type="python",
        workdir=str(old),
        port=21555,
        status="deployed",
    )
    try:
        services.deployment_allocate(deployment=deployment)
        deployment.refresh_from_db()
        assert deployment.workdir == str(conf.environments_dir() / "old-env" / "api")
        assert deployment.status == "pending" and deployment.pid is None
        assert not old.exists(), "the old folder (and its env file) is removed"
        assert pwd.getpwnam(hosts.local_user_of(deployment)).pw_dir == deployment.workdir + "/home"
    finally:
        hosts.local_user_remove(deployment=deployment)
