"""Fixtures of the provider tests: providers as plain adapters, with no database and no worker."""

from __future__ import annotations

import json
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from provisioning.providers.aws import AwsProvider
from provisioning.providers.local import LocalProvider


def ssh_public_key(kind: str = "ed25519") -> str:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else rsa.generate_private_key(65537, 2048)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} tester@example"


def health(port: int, timeout: float = 3.0) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as answer:
        return json.loads(answer.read())


MANIFEST = {
    "distribution": "fedora-41",
    "architecture": "x86_64",
    "packages": ["nginx", "curl"],
    "customizations": {
        "users": [{"name": "ops", "ssh_key": ssh_public_key(), "groups": ["wheel"]}],
        "files": [{"path": "/etc/motd", "content": "hello", "mode": "0644"}],
        "services": {"enabled": ["nginx"], "disabled": []},
    },
}


@pytest.fixture
def local(tmp_path) -> LocalProvider:
    """A local provider in a folder of its own; every instance it started is gone after the test."""
    provider = LocalProvider(root=tmp_path / "local", build_seconds=0.5, boot_seconds=0.2, latency=0.0)
    yield provider
    provider.stop_all()
    assert provider.live_processes() == []


@pytest.fixture
def aws(aws_endpoint) -> AwsProvider:
    return AwsProvider({"access_key_id": "testing", "secret_access_key": "testing"})
