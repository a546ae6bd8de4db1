"""Secrets never appear: a full run with a real worker — an environment order with vault values
(ansible, nginx), a launch into an AWS account (moto) with its credentials, API tokens and passwords —
then every place a secret could leak to is searched for each secret value: the worker's and this
test's logs, every API answer, the admin list and change pages of every model, and every file under
DATA_DIR and the temporary folders the run made."""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin

from provisioning.orders import conf, vault
from provisioning.orders.models import VaultVariable
from provisioning.services import api_user_create_or_update
from tests.conftest import ARTIFACTS
from tests.fixtures.actors import client_for
from tests.images.conftest import launch_body, wait_until
from tests.providers.conftest import ssh_public_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


class Recorder:
    """Every answer the test got, kept to be searched."""

    def __init__(self) -> None:
        self.answers: list[str] = []

    def keep(self, answer):
        self.answers.append(
            f"{answer.status_code} {dict(answer.items())} {answer.content.decode(errors='replace')}"
        )
        return answer


def order_text(env: str, repo) -> str:
    return f"""\
action: update
environment_id: "{env}"
api:
  domains: [api.{env}.example.com]
  services:
    - id: "6"
      path: /core
      repository: {{url: '{repo.url}', version: v1}}
      variables: [JWT_SECRET, PAYMENT_KEY]
      type: python
"""


def _files_since(root: Path, since: float) -> dict[str, str]:
    found = {}
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= since:
                if path.stat().st_size < 5_000_000:
                    found[str(path)] = path.read_bytes().decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def test_no_secret_appears_in_logs_answers_admin_pages_or_files(
    orders_worker, nginx_proxy, aws_endpoint, service_repo, leave_no_service, client, caplog, tmp_path
):
    started = time.time() - 1
    caplog.set_level(logging.DEBUG)
    seen = Recorder()
    password = secrets.token_urlsafe(18)
    owner, owner_token = api_user_create_or_update(username="olivia", customer_name="Acme", password=password)
    hostmaster, hostmaster_token = api_user_create_or_update(
        username="hilda", customer_name="Hosting", hostmaster=True, password=secrets.token_urlsafe(18)
    )
    api = client_for(owner_token)

    # A password travels through the login page.
    seen.keep(client.post("/login/", {"username": "olivia", "password": password}))
    seen.keep(client.get("/"))

    # A cloud account with credentials, and a launch into it (moto) that uses them in the worker.
    access_key_id = "AKIA" + secrets.token_hex(8).upper()
    secret_access_key = secrets.token_urlsafe(30)
    account = seen.keep(
        api.post(
            "/api/cloud-accounts/",
            {
                "provider": "aws",
                "name": "prod",
                "access_key_id": access_key_id,
                "secret_access_key": secret_access_key,
            },
            format="json",
        )
    ).json()
    assert "secret_access_key" not in account and account["has_credentials"] is True
    body = launch_body(
        provider="aws", regions=("eu-west-1",), account=account["id"], instance_type="t3.micro", amount=1
    )
    body["launch"]["public_key"] = ssh_public_key()
    launched = seen.keep(api.post("/api/image-builds/", body, format="json"))
    assert launched.status_code == 201, launched.content
    reservation_id = launched.json()["reservation"]["id"]

    # An environment order whose vault values are generated, encrypted and handed to the service.
    repo = service_repo("api", "v1")
    env = f"env-{uuid.uuid4().hex[:6]}"
    ordered = seen.keep(
        api.generic("POST", "/api/orders/", order_text(env, repo), content_type="application/yaml")
    )
    assert ordered.status_code == 201, ordered.content
    order_id = ordered.json()["id"]

    def reservation_done():
        answer = seen.keep(api.get(f"/api/reservations/{reservation_id}/")).json()
        return answer if answer["finished_at"] else None

    def order_done():
        answer = seen.keep(api.get(f"/api/orders/{order_id}/")).json()
        return answer if answer["status"] in ("succeeded", "failed", "cancelled", "timed_out") else None

    assert wait_until(reservation_done, timeout=120, what="the launch")["state"] == "succeeded"
    assert wait_until(order_done, timeout=180, what="the order")["status"] == "succeeded"
    seen.keep(api.post(f"/api/reservations/{reservation_id}/terminate/"))
    vault_values = [vault.decrypt(v.ciphertext) for v in VaultVariable.objects.all()]
    assert len(vault_values) >= 2

    # Every read the API offers, as the owner and as the hostmaster.
    for who in (api, client_for(hostmaster_token)):
        for path in (
            "operations",
            "projects",
            "booking-items",
            "hosting-assets",
            "image-builds",
            "reservations",
            "pubkeys",
            "cloud-accounts",
            "application-requests",
            "application-teams",
            "orders",
        ):
            listed = seen.keep(who.get(f"/api/{path}/")).json()
            for row in listed["results"]:
                seen.keep(who.get(f"/api/{path}/{row['id']}/"))

    # The admin: every model's list, search and change pages, as a hostmaster and as the superuser.
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "root@example.com", secrets.token_urlsafe(12))
    for user in (hostmaster, root):
        client.force_login(user)
        for model in admin.site._registry:
            meta = model._meta
            base = f"/admin/{meta.app_label}/{meta.model_name}/"
            listing = seen.keep(client.get(base))
            if listing.status_code != 200:
                continue
            seen.keep(client.get(base, {"q": "a"}))
            for obj in model.objects.all()[:20]:
                seen.keep(client.get(f"{base}{obj.pk}/change/"))

    secret_values = {
        "password": password,
        "owner token": owner_token,
        "hostmaster token": hostmaster_token,
        "aws access key id": access_key_id,
        "aws secret access key": secret_access_key,
        **{f"vault value {i}": value for i, value in enumerate(vault_values)},
    }
    haystacks = {f"answer {i}": text for i, text in enumerate(seen.answers)}
    haystacks["this test's log"] = caplog.text
    for path in (ARTIFACTS / "logs").glob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_text(errors="replace")
    runs = conf.runs_dir()
    assert not runs.exists() or not any(runs.iterdir()), "ansible run folders must be removed after each run"
    # The service's own env file (0600, beside the running service) is where its vault values belong.
    data_files = {
        where: text
        for where, text in _files_since(Path(settings.DATA_DIR), 0).items()
        if not where.endswith("/service.env")
    }
    haystacks.update(data_files)
    tmp = Path(tempfile.gettempdir())
    ours = [p for p in tmp.iterdir() if p.name.startswith(("ansible", "tmp", "pytest-of", "provisioning"))]
    for folder in ours:
        if folder.is_dir() and folder.stat().st_uid == os.getuid() and folder.stat().st_mtime >= started:
            # The local target's services live there (ORDERS_LOCAL_ROOT): their env files too.
            found = _files_since(folder, started)
            haystacks.update(
                {where: text for where, text in found.items() if not where.endswith("/service.env")}
            )
    # DATA_DIR was searched whole (it may hold no file at all now), and so were the services' folders
    # on the local target (their code, logs and pid files; the env files aside).
    assert Path(settings.DATA_DIR).is_dir() and not any(w.endswith("/service.env") for w in haystacks)
    assert any(where.startswith(str(conf.environments_dir())) for where in haystacks)
    assert sum("admin" in text for text in haystacks.values()) > 10

    leaks = [
        f"{name} in {where}: ...{text[max(0, text.index(value) - 120) : text.index(value)]}..."
        for where, text in haystacks.items()
        for name, value in secret_values.items()
        if value in text
    ]
    assert not leaks, "secrets leaked: " + "\n".join(leaks[:20])
    print(json.dumps({"places searched": len(haystacks), "secrets": len(secret_values)}))
