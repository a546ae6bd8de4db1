"""Deploys onto target hosts over SSH, for real: two hosts in network namespaces with Debian's sshd on
host keys the test pins, a real worker running the playbooks against them, and nginx on this side
routing to `host:port`."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from provisioning.orders import proxy
from provisioning.orders.choices import DeploymentStatus, OrderStatus
from provisioning.orders.models import DeployHost, Order, ServiceDeployment
from tests.fixtures.hosts import NetnsHost

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


def order_yaml(env: str, repos: dict, **versions: str) -> str:
    services = "".join(
        f"""\
    - id: "{sid}"
      path: /{sid}
      repository: {{url: '{repo.url}', version: {versions.get(sid, "v1")}}}
      type: python
"""
        for sid, repo in repos.items()
    )
    return f'action: update\nenvironment_id: "{env}"\napi:\n  domains: [api.{env}.example.com]\n  services:\n{services}'


def process(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"order-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(text)
    out = io.StringIO()
    call_command("process_order", str(path), "--customer", "Acme", stdout=out)
    return out.getvalue()


def register(host: NetnsHost, capacity: int) -> DeployHost:
    registered = DeployHost(
        name=host.name,
        address=host.address,
        user="root",
        host_key=host.host_key,
        root=str(host.root),
        capacity=capacity,
        labels=["python"],
    )
    registered.full_clean()
    registered.set_private_key(host.private_key)
    registered.save()
    return registered


def through_proxy(domain: str, path: str) -> dict:
    status, headers, body = proxy.request(domain, path)
    assert status == 200, (domain, path, status, body)
    return json.loads(body)


def test_services_go_to_the_hosts_with_room_and_answer_through_the_proxy(
    orders_worker, target_hosts, service_repo, tmp_path, owner
):
    first, second = target_hosts
    register(first, capacity=2)
    register(second, capacity=2)
    repos = {"core": service_repo("core", "v1", "v2"), "auth": service_repo("auth", "v1")}
    env = f"env-{uuid.uuid4().hex[:6]}"

    output = process(tmp_path, order_yaml(env, repos))
    assert "succeeded" in output, output
    # By room left: auth (first by path) takes the first host (a tie: by name), core the other one.
    auth, core = (
        ServiceDeployment.objects.get(service_id="auth"),
        ServiceDeployment.objects.get(service_id="core"),
    )
    assert auth.host.name == first.name and core.host.name == second.name
    assert first.runs_here(auth.pid) and second.runs_here(core.pid)
    assert Path(auth.workdir).is_relative_to(first.root) and Path(core.workdir).is_relative_to(second.root)
    env_file = Path(core.workdir) / "home" / "service.env"
    assert env_file.stat().st_mode & 0o777 == 0o600 and "HOST='0.0.0.0'" in env_file.read_text()
    # nginx, on this side, reaches each service at its host's address.
    assert through_proxy(f"api.{env}.example.com", "/core/x")["name"] == "core"
    assert through_proxy(f"api.{env}.example.com", "/auth")["name"] == "auth"
    site = proxy.site_path(env).read_text()
    assert f"{first.address}:{auth.port}" in site and f"{second.address}:{core.port}" in site

    # The same order again changes nothing: same hosts, same processes.
    assert "Nothing to change" in process(tmp_path, order_yaml(env, repos))
    # A new version of core redeploys it where it is; auth is looked at over SSH and kept.
    process(tmp_path, order_yaml(env, repos, core="v2"))
    again = {d.service_id: d for d in ServiceDeployment.objects.all()}
    assert again["auth"].host_id == auth.host_id and again["auth"].pid == auth.pid
    assert again["core"].host_id == core.host_id and again["core"].pid != core.pid
    assert second.runs_here(again["core"].pid)
    assert through_proxy(f"api.{env}.example.com", "/core")["version"] == "v2"


def test_a_host_taken_out_makes_the_deploy_retry_then_fail_naming_it_and_nothing_stays_half_deployed(
    orders_worker, target_hosts, service_repo, tmp_path, owner
):
    first, second = target_hosts
    register(first, capacity=1)
    register(second, capacity=1)
    repos = {"alpha": service_repo("alpha", "v1"), "beta": service_repo("beta", "v1")}
    first.stop_sshd()  # alpha goes there (a tie: by name), beta to the second host

    with pytest.raises(CommandError) as failed:
        process(tmp_path, order_yaml(f"env-{uuid.uuid4().hex[:6]}", repos))
    message = str(failed.value)
    assert f"host {first.name} ({first.address}:22) cannot be reached over SSH" in message, message
    order = Order.objects.get()
    assert order.status == OrderStatus.FAILED
    deploy = order.operation.step_runs.filter(step="deploy").order_by("attempt")
    assert [run.outcome for run in deploy] == ["retry", "retry", "failed"]

    alpha, beta = (
        ServiceDeployment.objects.get(service_id="alpha"),
        ServiceDeployment.objects.get(service_id="beta"),
    )
    assert alpha.host.name == first.name and beta.host.name == second.name
    # beta was deployed on the second host, then undone: nothing of it runs there, no folder is left.
    assert beta.status == DeploymentStatus.FAILED and beta.pid is None
    assert not Path(beta.workdir).exists() and not any(p.is_file() for p in second.root.rglob("*"))
    assert all("sshd" in Path(f"/proc/{pid}/cmdline").read_text() for pid in second.pids())
    assert not Path(alpha.workdir).exists()
