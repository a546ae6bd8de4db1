"""Hostmasters register deploy hosts in the admin; the private key is write-only."""

from __future__ import annotations

import subprocess

import pytest

from provisioning.orders.models import DeployHost

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def plain_static(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def keys(tmp_path) -> tuple[str, str]:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    return (tmp_path / "k").read_text(), " ".join((tmp_path / "k.pub").read_text().split()[:2])


def form(private_key: str, host_key: str, **extra) -> dict:
    return {
        "name": "web-1",
        "address": "10.0.0.5",
        "ssh_port": "22",
        "user": "deploy",
        "host_key": host_key,
        "root": "/srv/provisioning",
        "capacity": "4",
        "labels": '["python"]',
        "enabled": "on",
        "private_key": private_key,
        **extra,
    }


def test_a_hostmaster_registers_a_host_and_its_private_key_is_never_shown_again(admin_client, keys):
    private_key, host_key = keys
    answer = admin_client.post("/admin/orders/deployhost/add/", form(private_key, host_key))
    assert answer.status_code == 302, answer.content.decode()[:3000]
    host = DeployHost.objects.get()
    assert host.private_key() == private_key.strip() + "\n" and private_key not in host.private_key_encrypted
    body = private_key.splitlines()[1]
    for page in ("/admin/orders/deployhost/", f"/admin/orders/deployhost/{host.pk}/change/"):
        shown = admin_client.get(page)
        assert shown.status_code == 200 and body not in shown.content.decode()
    assert body not in repr(host) and body not in str(host)

    # Saving again without a key keeps the one stored.
    answer = admin_client.post(
        f"/admin/orders/deployhost/{host.pk}/change/", form("", host_key, capacity="5")
    )
    assert answer.status_code == 302
    host.refresh_from_db()
    assert host.capacity == 5 and host.private_key() == private_key.strip() + "\n"


def test_it_refuses_what_would_reach_an_inventory_or_nginx_unchecked(admin_client, keys):
    private_key, host_key = keys
    bad = form(
        "not a key",
        host_key + "\nevil",
        address="10.0.0.5; rm -rf /",
        user="root'",
        root="/srv/{{ x }}",
    )
    answer = admin_client.post("/admin/orders/deployhost/add/", bad)
    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert set(errors) == {"private_key", "host_key", "address", "user", "root"}
    assert not DeployHost.objects.exists()
