"""End to end with the real parts: a Celery worker, ansible-runner deploying tiny services from local
git repositories, and Debian's nginx routing to them on a loopback port."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from provisioning.orders import conf, proxy, vault
from provisioning.orders.choices import DeploymentStatus, EnvironmentState, OrderStatus
from provisioning.orders.models import Environment, Order, ServiceDeployment, VaultVariable
from tests.conftest import ARTIFACTS
from tests.orders.conftest import running

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


def order_yaml(
    env: str,
    api_domain: str,
    front_domain: str,
    api_repo,
    front_repo,
    *,
    api_version="v1",
    front_version="v1",
    with_front=True,
) -> str:
    text = f"""\
action: update
environment_id: "{env}"
api:
  domains:
    - {api_domain}
  services:
    - id: "6"
      path: /core
      repository:
        url: '{api_repo.url}'
        version: {api_version}
      roles: [auth, discovery]
      variables: [JWT_SECRET]
      type: python
"""
    if with_front:
        text += f"""\
front:
  domains:
    - {front_domain}
  services:
    - id: "8"
      path: /
      repository:
        url: '{front_repo.url}'
        version: {front_version}
      type: python
"""
    return text


def process(tmp_path: Path, text: str, *extra: str, customer: str = "Acme") -> str:
    path = tmp_path / f"order-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(text)
    out = io.StringIO()
    call_command("process_order", str(path), "--customer", customer, *extra, stdout=out)
    return out.getvalue()


def through_proxy(domain: str, path: str) -> tuple[int, dict, dict | None]:
    status, headers, body = proxy.request(domain, path)
    try:
        return status, headers, json.loads(body)
    except ValueError:
        return status, headers, None


def deployment(service_id: str) -> ServiceDeployment:
    return ServiceDeployment.objects.get(service_id=service_id)


def test_it_deploys_routes_redeploys_only_what_changed_and_removes_services(
    orders_worker, nginx_proxy, service_repo, tmp_path, owner
):
    api_repo = service_repo("api", "v1", "v2")
    front_repo = service_repo("front", "v1", "v2")
    env = f"env-{uuid.uuid4().hex[:6]}"
    api_domain, front_domain = f"api.{env}.example.com", f"front.{env}.example.com"
    first = order_yaml(env, api_domain, front_domain, api_repo, front_repo)

    # A dry run shows the changes and stores nothing.
    shown = process(tmp_path, first, "--dry-run")
    assert "deploy service 6 (api /core) at version v1" in shown
    assert "deploy service 8 (front /) at version v1" in shown
    assert not Order.objects.exists() and not Environment.objects.exists()

    output = process(tmp_path, first)
    assert "succeeded" in output
    order = Order.objects.get()
    assert order.status == OrderStatus.SUCCEEDED
    assert all(task["status"] == "done" for task in order.tasks), order.tasks
    assert [t["name"] for t in order.tasks] == ["domains", "resources", "vault", "deploy", "proxy", "retire"]
    assert "[   deployed] service 6" in output and "[   deployed] service 8" in output

    # Each domain and path reaches its own service through nginx.
    status, headers, body = through_proxy(api_domain, "/core/users")
    assert status == 200 and body["name"] == "api" and body["version"] == "v1"
    assert body["path"] == "/core/users" and body["has_database_password"] is True
    assert headers["X-Orders-Service"] == "6"
    status, _, body = through_proxy(front_domain, "/index.html")
    assert status == 200 and body["name"] == "front" and body["version"] == "v1"
    status, headers, _ = through_proxy(api_domain, "/other")
    assert status == 404 and "X-Orders-Service" not in headers  # no route there
    status, _, body = through_proxy(front_domain, "/core")
    assert body["name"] == "front"  # /core is a path of the api domain only

    api, front = deployment("6"), deployment("8")
    assert running(api.pid) and running(front.pid) and api.port != front.port
    env_file = Path(api.workdir) / "home" / "service.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    secrets = [vault.decrypt(v.ciphertext) for v in VaultVariable.objects.all()]
    assert len(secrets) == 7  # 3 standard per service + JWT_SECRET
    assert all(
        secret in env_file.read_text() or secret in (Path(front.workdir) / "home" / "service.env").read_text()
        for secret in secrets
    )
    assert all(
        secret.encode() not in v.ciphertext.encode()
        for v in VaultVariable.objects.all()
        for secret in secrets
    )

    # The same order again: nothing to change, nothing restarted, no workflow.
    again = process(tmp_path, first)
    assert "Nothing to change" in again
    assert Order.objects.count() == 2 and Order.objects.filter(operation__isnull=False).count() == 1
    assert deployment("6").pid == api.pid and deployment("8").pid == front.pid

    # A new version of one service redeploys that service only.
    second = order_yaml(env, api_domain, front_domain, api_repo, front_repo, front_version="v2")
    shown = process(tmp_path, second, "--dry-run")
    assert "redeploy service 8 (front /): version v1 -> v2" in shown and "service 6" not in shown
    process(tmp_path, second)
    assert deployment("6").pid == api.pid and deployment("6").deployed_at == api.deployed_at
    assert deployment("8").pid != front.pid and not running(front.pid)
    assert through_proxy(front_domain, "/")[2]["version"] == "v2"
    assert through_proxy(api_domain, "/core")[2]["version"] == "v1"
    assert VaultVariable.objects.count() == 7  # existing vault variables are kept

    # Removing a service stops it and removes its route.
    front = deployment("8")
    third = order_yaml(env, api_domain, front_domain, api_repo, front_repo, with_front=False)
    shown = process(tmp_path, third, "--dry-run")
    assert "stop service 8 (front /) and remove its route" in shown
    process(tmp_path, third)
    assert deployment("8").status == DeploymentStatus.REMOVED and not running(front.pid)
    assert not Path(front.workdir).exists()
    status, headers, _ = through_proxy(front_domain, "/")
    assert status == 404 and "X-Orders-Service" not in headers
    assert through_proxy(api_domain, "/core")[2]["name"] == "api"
    assert front_domain not in proxy.site_path(env).read_text()

    # No vault value in any log, run folder or API answer (service 8's secrets included).
    last = Order.objects.order_by("-id").first()
    assert last.customer == owner[0].memberships.get().customer
    answer = owner[1].get(f"/api/orders/{last.pk}/")
    assert answer.status_code == 200 and answer.json()["services"][0]["status"] == "deployed"
    haystacks = {"api answer": answer.content.decode(), "command output": output + again + shown}
    logs = ARTIFACTS / "logs"
    for path in [*logs.glob("*.log"), *nginx_proxy.prefix.rglob("*")]:
        if path.is_file():
            haystacks[str(path)] = path.read_text(errors="replace")
    runs = conf.runs_dir()
    assert not runs.exists() or not any(runs.iterdir()), "run folders must be removed after each run"
    for path in Path(settings.DATA_DIR).rglob("*"):
        if path.is_file() and path.name != "service.env" and path.stat().st_size < 5_000_000:
            haystacks[str(path)] = path.read_bytes().decode(errors="replace")
    for row in Order.objects.all():
        haystacks[f"order {row.pk}"] = json.dumps([row.spec, row.changes, row.message, row.error, row.tasks])
    assert len(haystacks) > 5
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a vault value leaked into {where}"

    # The delete order tears it all down.
    api = deployment("6")
    delete = tmp_path / "delete.yml"
    delete.write_text(f'action: delete\nenvironment_id: "{env}"\n')
    out = io.StringIO()
    call_command("process_order", str(delete), "--customer", "Acme", stdout=out)
    assert not running(api.pid) and not proxy.site_path(env).exists()
    assert Environment.objects.get(key=env).state == EnvironmentState.DELETED
    assert not VaultVariable.objects.exists()
    assert through_proxy(api_domain, "/core")[0] == 404


def test_it_fails_with_the_reason_when_a_service_does_not_deploy(
    orders_worker, service_repo, tmp_path, owner
):
    api_repo = service_repo("api", "v1")
    env = f"env-{uuid.uuid4().hex[:6]}"
    text = order_yaml(env, f"api.{env}.example.com", "", api_repo, None, api_version="v9", with_front=False)
    with pytest.raises(CommandError) as failed:
        process(tmp_path, text)
    assert "failed" in str(failed.value) and "service 6" in str(failed.value)
    order = Order.objects.get()
    tasks = {task["name"]: task["status"] for task in order.tasks}
    assert order.status == OrderStatus.FAILED and tasks["deploy"] == "failed"
    assert tasks["proxy"] == "pending"
    assert deployment("6").status == DeploymentStatus.FAILED
    assert not any(conf.runs_dir().iterdir()) if conf.runs_dir().exists() else True
