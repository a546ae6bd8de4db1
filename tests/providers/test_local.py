"""The local provider: images as root folders built from the manifest's cloud-config, instances as
real processes on loopback ports that start from a copy of their image."""

import hashlib
import shutil
import socket
import time

import pytest

from provisioning.providers import BuildState, InjectedFault, InstanceState, LaunchRequest, ProviderError
from provisioning.providers.base import TAG_RESERVATION
from provisioning.providers.local import LocalProvider, process_alive
from tests.providers.conftest import MANIFEST, health, ssh_public_key


def built_image(local, region: str = "local-1", ref: str = "b1") -> str:
    image_id = local.start_build(region=region, build_ref=ref, name="web", manifest=MANIFEST)
    deadline = time.monotonic() + 10
    while local.describe_build(region=region, image_id=image_id).state != BuildState.READY:
        assert time.monotonic() < deadline, "the build never got ready"
        time.sleep(0.1)
    return image_id


def launch(
    local, image_id: str, count: int = 2, token: str = "tok-1", region: str = "local-1", key: str = ""
):
    if not key:
        key = local.ensure_public_key(region=region, name="k1", public_key=ssh_public_key()).name
    request = LaunchRequest(
        region=region,
        image_id=image_id,
        count=count,
        instance_type="small",
        key_name=key,
        client_token=token,
        tags={TAG_RESERVATION: "42"},
    )
    return request, local.launch_instances(request)


def wait_running(local, region: str, ids: list[str]) -> list:
    deadline = time.monotonic() + 10
    while True:
        found = local.describe_instances(region=region, instance_ids=ids)
        if all(i.state == InstanceState.RUNNING for i in found):
            return found
        assert time.monotonic() < deadline, f"not running: {found}"
        time.sleep(0.05)


def test_it_builds_a_root_folder_from_the_cloud_config_ready_only_after_the_build_time(local):
    image_id = local.start_build(region="local-1", build_ref="b1", name="web", manifest=MANIFEST)
    assert local.describe_build(region="local-1", image_id=image_id).state == BuildState.BUILDING
    image = local.root / "local-1" / "images" / image_id
    assert (image / "user-data").read_text().startswith("#cloud-config\n")
    root = image / "root"
    assert (root / "etc/motd").read_text() == "hello"
    assert oct((root / "etc/motd").stat().st_mode & 0o777) == "0o644"
    keys = root / "home/ops/.ssh/authorized_keys"
    assert keys.read_text() == MANIFEST["customizations"]["users"][0]["ssh_key"] + "\n"
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    assert (root / "var/lib/provisioning/packages.txt").read_text() == "nginx\ncurl\n"
    assert (root / "var/lib/provisioning/build-finished").read_text() == "provisioning-build-finished b1\n"
    assert built_image(local) == image_id
    assert local.start_build(region="local-1", build_ref="b1", name="web", manifest=MANIFEST) == image_id


def test_an_altered_image_fails_the_build(local):
    image_id = built_image(local)
    motd = local.root / "local-1" / "images" / image_id / "root" / "etc" / "motd"
    motd.chmod(0o666)  # its mode is part of the image too
    status = local.describe_build(region="local-1", image_id=image_id)
    assert status.state == BuildState.FAILED
    assert "SHA256SUMS" in status.message


def test_an_instance_answers_health_with_the_files_and_keys_its_image_was_built_with(local):
    manifest = {
        **MANIFEST,
        "customizations": {
            **MANIFEST["customizations"],
            "files": [
                {"path": "/etc/motd", "content": "hello", "mode": "0644"},
                {"path": "/opt/app/run.sh", "content": "#!/bin/sh\necho 'é: #x'\n", "mode": "0750"},
            ],
        },
    }
    image_id = local.start_build(region="local-1", build_ref="b9", name="web", manifest=manifest)
    while local.describe_build(region="local-1", image_id=image_id).state != BuildState.READY:
        time.sleep(0.1)
    _, launched = launch(local, image_id, count=1, token="tok-health")
    [instance] = wait_running(local, "local-1", [i.id for i in launched])
    answer = health(instance.port)
    assert answer["image_id"] == image_id
    files = {f["path"]: (f["sha256"], f["mode"]) for f in answer["files"]}
    for item in manifest["customizations"]["files"]:
        assert files[item["path"]] == (hashlib.sha256(item["content"].encode()).hexdigest(), item["mode"])
    key = MANIFEST["customizations"]["users"][0]["ssh_key"]
    assert answer["users"] == [
        {"name": "ops", "groups": ["wheel"], "shell": "/bin/bash", "authorized_keys": [key]}
    ]
    assert files["/home/ops/.ssh/authorized_keys"][1] == "0600"
    assert key in answer["authorized_keys"]
    assert answer["packages"] == ["nginx", "curl"]
    assert answer["services"] == {"enabled": ["nginx"], "disabled": []}
    assert answer["build_finished"] == "provisioning-build-finished b9"
    # It runs from a copy: the image changing under it does not change what it carries.
    disk = local.root / "local-1" / "instances" / f"{instance.id}.disk"
    assert (disk / "root/opt/app/run.sh").exists()
    local.terminate_instances(region="local-1", instance_ids=[instance.id])
    assert not disk.exists()


def test_it_reuses_a_public_key_found_by_fingerprint_and_refuses_private_keys(local):
    key = ssh_public_key("rsa")
    first = local.ensure_public_key(region="local-1", name="first", public_key=key)
    again = local.ensure_public_key(region="local-1", name="second", public_key=key)
    assert (first.imported, again.imported) == (True, False)
    assert again.name == "first"
    with pytest.raises(ValueError, match="private key"):
        local.ensure_public_key(
            region="local-1", name="x", public_key="-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"
        )


def test_instances_answer_their_health_endpoint_and_terminate_frees_them(local):
    image_id = built_image(local)
    key = ssh_public_key()
    key_name = local.ensure_public_key(region="local-1", name="k1", public_key=key).name
    _, instances = launch(local, image_id, count=2, key=key_name)
    assert [i.state for i in instances] == [InstanceState.PENDING] * 2
    running = wait_running(local, "local-1", [i.id for i in instances])
    ports = [i.port for i in running]
    assert len(set(ports)) == 2
    for instance in running:
        answer = health(instance.port)
        assert answer["instance_id"] == instance.id
        assert answer["image_id"] == image_id
        assert key in answer["authorized_keys"]
        assert MANIFEST["customizations"]["users"][0]["ssh_key"] in answer["authorized_keys"]

    local.terminate_instances(region="local-1", instance_ids=[i.id for i in running])
    assert local.wait_terminated(region="local-1", tags={TAG_RESERVATION: "42"}, timeout=10)
    assert local.live_processes() == []
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    assert local.find_instances(region="local-1", tags={TAG_RESERVATION: "42"}) == []


def test_a_launch_repeated_with_the_same_token_never_starts_a_second_set(local):
    image_id = built_image(local)
    request, first = launch(local, image_id, count=3)
    again = local.launch_instances(request)
    assert sorted(i.id for i in again) == sorted(i.id for i in first)
    wait_running(local, "local-1", [i.id for i in first])
    assert len(local.live_processes()) == 3

    # One instance died without being terminated (a crash): the same launch starts that one again.
    folder = local.root / "local-1" / "instances"
    victim = first[0].id
    pid = int((folder / f"{victim}.pid").read_text())
    import os
    import signal

    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while process_alive(pid, victim):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert local.describe_instances(region="local-1", instance_ids=[victim])[0].state == InstanceState.STOPPED
    local.launch_instances(request)
    wait_running(local, "local-1", [i.id for i in first])
    assert len(local.live_processes()) == 3
    assert len(local.find_instances(region="local-1", tags={TAG_RESERVATION: "42"})) == 3


def test_an_instance_exits_by_itself_when_its_folder_is_removed(tmp_path):
    local = LocalProvider(root=tmp_path / "gone", build_seconds=0, boot_seconds=0, latency=0)
    image_id = built_image(local)
    _, instances = launch(local, image_id, count=1)
    running = wait_running(local, "local-1", [instances[0].id])
    pid = int((local.root / "local-1" / "instances" / f"{running[0].id}.pid").read_text())
    shutil.rmtree(local.root)
    deadline = time.monotonic() + 5
    while process_alive(pid, running[0].id):
        assert time.monotonic() < deadline, "the instance outlived its folder"
        time.sleep(0.05)


def test_an_injected_fault_fails_only_the_named_call(tmp_path):
    local = LocalProvider(root=tmp_path / "faulty", fault="describe_instances", build_seconds=0, latency=0)
    try:
        image_id = built_image(local)
        _, instances = launch(local, image_id, count=1)
        with pytest.raises(InjectedFault):
            local.describe_instances(region="local-1", instance_ids=[instances[0].id])
        assert len(local.find_instances(region="local-1", tags={TAG_RESERVATION: "42"})) == 1
    finally:
        local.stop_all()


def test_an_unknown_region_or_architecture_is_refused(local):
    errors = local.validate_manifest({"architecture": "sparc", "target": {"regions": ["local-1", "mars-1"]}})
    assert set(errors) == {"architecture", "target.regions[1]"}
    assert "mars-1" in errors["target.regions[1]"][0]
    with pytest.raises(ProviderError):
        local.start_build(region="mars-1", build_ref="b", name="x", manifest=MANIFEST)
