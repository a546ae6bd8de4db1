"""The manifest as a cloud-config: every manifest the API accepts makes one that Debian's cloud-init
takes, and a manifest that cannot make one is refused with the field to correct."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from images.manifest import ARCHITECTURES, DISTRIBUTIONS, validate_manifest
from provisioning.providers import cloud_config
from tests.fixtures.cloud_init import schema_command
from tests.images.conftest import launch_body
from tests.providers.conftest import MANIFEST, ssh_public_key

KEYS = [ssh_public_key("ed25519"), ssh_public_key("rsa")]
_SEGMENT = st.from_regex(r"[A-Za-z0-9._-]{1,24}", fullmatch=True)
_NAME = st.from_regex(r"[a-z_][a-z0-9_-]{0,31}", fullmatch=True)
_GROUP = st.from_regex(r"[a-z_][a-z0-9_-]{0,31}", fullmatch=True)
_PACKAGE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,40}", fullmatch=True)
_SERVICE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9@._-]{0,40}", fullmatch=True)
# Key comments are the customer's text too: quotes, colons, '#', YAML's markers, line breaks.
_COMMENT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def users(draw) -> dict:
    user = {"name": draw(_NAME), "groups": draw(st.lists(_GROUP, max_size=3, unique=True))}
    if draw(st.booleans()):
        user["ssh_key"] = f"{draw(st.sampled_from(KEYS)).rsplit(' ', 1)[0]} {draw(_COMMENT)}".strip()
    return user


@st.composite
def files(draw) -> dict:
    return {
        "path": "/" + "/".join(draw(st.lists(_SEGMENT, min_size=1, max_size=5))),
        # Any text at all: YAML markers, '#cloud-config' lines, NUL and other control characters.
        "content": draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)),
        "mode": draw(st.from_regex(r"0?[0-7]{3}", fullmatch=True)),
    }


manifests = st.fixed_dictionaries(
    {
        "distribution": st.sampled_from(DISTRIBUTIONS),
        "architecture": st.sampled_from(ARCHITECTURES),
        "packages": st.lists(_PACKAGE, max_size=8, unique=True),
        "customizations": st.fixed_dictionaries(
            {
                "users": st.lists(users(), max_size=3, unique_by=lambda u: u["name"]),
                "files": st.lists(files(), max_size=4),
                "services": st.fixed_dictionaries(
                    {
                        "enabled": st.lists(_SERVICE, max_size=3, unique=True),
                        "disabled": st.lists(_SERVICE, max_size=3, unique=True),
                    }
                ),
            }
        ),
        "target": st.sampled_from(
            [{"provider": "local", "regions": ["local-1"]}, {"provider": "aws", "regions": ["eu-west-1"]}]
        ),
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=manifests, build_ref=st.from_regex(r"build-[0-9a-f-]{36}", fullmatch=True))
def test_every_manifest_the_api_accepts_makes_a_cloud_config_cloud_init_takes(
    cloud_init_schema, manifest, build_ref
):
    clean, errors = validate_manifest(manifest)
    event("refused" if errors else "accepted")
    if errors:
        # Refused: every error names a field of the manifest, nothing is left to a later failure.
        assert all(path.startswith("manifest") for path in errors)
        return
    text = cloud_config.user_data(clean, build_ref=build_ref)
    answer = cloud_init_schema.check(text)
    assert answer["valid"], (answer, text)
    config = yaml.safe_load(text)
    # What the manifest asked for is there, unchanged, and nothing else.
    written = {f["path"]: (f["content"], f["permissions"]) for f in config.get("write_files", [])}
    assert written == {
        f["path"]: (f["content"], "0" + f["mode"][-3:]) for f in clean["customizations"]["files"]
    }
    assert [u["name"] for u in config.get("users", ["default"])[1:]] == [
        u["name"] for u in clean["customizations"]["users"]
    ]
    assert config["final_message"] == f"provisioning-build-finished {build_ref}"


def test_the_cloud_init_schema_command_agrees(tmp_path, cloud_init_schema):
    clean, errors = validate_manifest({**MANIFEST, "target": {"provider": "local", "regions": ["local-1"]}})
    assert not errors
    good = tmp_path / "good.yaml"
    good.write_text(cloud_config.user_data(clean, build_ref="build-1"))
    result = schema_command(good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout
    config = cloud_config.cloud_config(clean, build_ref="build-1")
    config["users"][1]["groups"] = []  # cloud-init wants at least one group, or none named
    bad = tmp_path / "bad.yaml"
    bad.write_text(cloud_config.render(config))
    assert schema_command(bad).returncode != 0
    assert not cloud_init_schema.check(bad.read_text())["valid"]
    assert "customizations.users[0]" in cloud_config._field(["users", 1, "groups"], config)


def test_the_config_carries_the_manifest_and_runs_no_shell_with_its_values():
    clean, _ = validate_manifest({**MANIFEST, "target": {"provider": "local", "regions": ["local-1"]}})
    config = cloud_config.cloud_config(clean, build_ref="build-2")
    assert config["packages"] == ["nginx", "curl"]
    assert config["groups"] == ["wheel"]
    assert config["users"][1] == {
        "name": "ops",
        "shell": "/bin/bash",
        "lock_passwd": True,
        "groups": ["wheel"],
        "ssh_authorized_keys": [MANIFEST["customizations"]["users"][0]["ssh_key"]],
    }
    assert config["write_files"] == [
        {"path": "/etc/motd", "content": "hello", "permissions": "0644", "owner": "root:root", "defer": True}
    ]
    assert config["runcmd"][0] == ["systemctl", "enable", "--now", "nginx"]
    assert all(isinstance(command, list) for command in config["runcmd"])


HOSTILE = [
    # (files, the field that must be named)
    ([{"path": "/etc/motd"}, {"path": "/etc/motd"}], "manifest.customizations.files[1].path"),
    ([{"path": "/etc/app"}, {"path": "/etc/app/conf"}], "manifest.customizations.files[0].path"),
    ([{"path": "/etc/./motd"}], "manifest.customizations.files[0].path"),
    ([{"path": "//etc/motd"}], "manifest.customizations.files[0].path"),
    ([{"path": "/etc/motd/"}], "manifest.customizations.files[0].path"),
    ([{"path": "/home/ops/.ssh/authorized_keys"}], "manifest.customizations.files[0].path"),
    ([{"path": "/home/ops"}], "manifest.customizations.files[0].path"),
    ([{"path": "/var/lib/provisioning/packages.txt"}], "manifest.customizations.files[0].path"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("files", "field"), HOSTILE)
def test_a_manifest_that_cannot_make_a_valid_config_answers_400_with_the_field(owner, files, field):
    body = launch_body()
    body["manifest"]["customizations"] = {**MANIFEST["customizations"], "files": files}
    answer = owner[1].post("/api/image-builds/", body, format="json")
    assert answer.status_code == 400, answer.json()
    assert field in answer.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tail", ["\nssh-ed25519 AAAAC3Nza other@key", '\r\ncommand="sh"', "\u2028x", "\x1b[2J"]
)
def test_a_key_that_would_add_a_line_to_authorized_keys_answers_400(owner, tail):
    body = launch_body()
    user = {**MANIFEST["customizations"]["users"][0]}
    user["ssh_key"] = user["ssh_key"] + tail
    body["manifest"]["customizations"] = {**MANIFEST["customizations"], "users": [user]}
    answer = owner[1].post("/api/image-builds/", body, format="json")
    assert answer.status_code == 400
    assert "one line" in answer.json()["manifest.customizations.users[0].ssh_key"][0]


@pytest.mark.django_db
def test_a_file_of_text_that_is_no_unicode_answers_400_at_its_content(owner):
    body = launch_body()
    body["manifest"]["customizations"] = {
        **MANIFEST["customizations"],
        "files": [{"path": "/etc/motd", "content": "@@"}],
    }
    raw = json.dumps(body).replace("@@", "\\ud800")  # a lone surrogate: JSON carries it, UTF-8 cannot
    answer = owner[1].post("/api/image-builds/", raw, content_type="application/json")
    assert answer.status_code == 400
    assert "manifest.customizations.files[0].content" in answer.json()


@pytest.mark.django_db
def test_an_aws_manifest_larger_than_user_data_takes_answers_400_at_the_largest_file(owner):
    body = launch_body(provider="aws", regions=("eu-central-1",))
    body["manifest"]["customizations"] = {
        **MANIFEST["customizations"],
        "files": [{"path": "/etc/small", "content": "x"}, {"path": "/etc/big", "content": "y" * 20000}],
    }
    answer = owner[1].post("/api/image-builds/", body, format="json")
    assert answer.status_code == 400
    assert "at most 16384" in answer.json()["manifest.customizations.files[1].content"][0]
