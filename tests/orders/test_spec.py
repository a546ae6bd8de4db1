"""The order spec: safe bounded loading, every bad field by its path, all at once."""

from __future__ import annotations

import pytest

from provisioning.orders.spec import MAX_BYTES, OrderInvalid, parse_order

GOOD = """\
action: "update"
environment_id: "3"
api:
    domains:
      - manager-api.lab.example.com
    services:
      - id: "6"
        path: /core
        repository:
          url: 'https://git.example.com/makeitsaas/auth-instance'
        roles: [auth, discovery, upload]
        variables: []
        type: python
      - id: "7"
        path: /
        repository:
          url: 'https://git.example.com/makeitsaas/manager-api'
          version: v1.2.0
        type: python
front:
    domains:
      - manager-front.lab.example.com
    services:
      - id: "8"
        path: /
        repository:
          url: 'git@git.example.com:makeitsaas/manager-front.git'
        type: python
"""


def errors_of(text: str | bytes) -> dict[str, list[str]]:
    with pytest.raises(OrderInvalid) as refused:
        parse_order(text)
    return refused.value.errors


def test_it_parses_the_seed_shaped_order():
    spec = parse_order(GOOD)
    assert spec.action == "update" and spec.environment_id == "3"
    assert spec.domains == {
        "api": ["manager-api.lab.example.com"],
        "front": ["manager-front.lab.example.com"],
    }
    assert [(s.id, s.section, s.path, s.version) for s in spec.services] == [
        ("6", "api", "/core", "HEAD"),
        ("7", "api", "/", "v1.2.0"),
        ("8", "front", "/", "HEAD"),
    ]
    assert spec.services[0].roles == ("auth", "discovery", "upload")


def test_it_reports_every_bad_field_by_its_path_at_once():
    text = GOOD.replace("url: 'https://git.example.com/makeitsaas/manager-api'", "url: 'ftp://x/../etc'")
    text = text.replace("path: /core", "path: /core/../../etc").replace(
        "roles: [auth", "colour: red\n        roles: [auth"
    )
    text = text.replace('environment_id: "3"', 'environment_id: "../3"\nextra: 1')
    errors = errors_of(text)
    assert set(errors) == {
        "environment_id",
        "extra",
        "api.services[0].path",
        "api.services[0].colour",
        "api.services[1].repository.url",
    }
    assert "unknown key" in errors["api.services[0].colour"][0]
    assert "scheme 'ftp'" in errors["api.services[1].repository.url"][0]


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/a/../../etc/passwd",
        "https://git.example.com/a/%2e%2e/b",
        "ext::sh -c touch% /tmp/pwned",
        "--upload-pack=touch /tmp/pwned",
        "https://user:secret@git.example.com/a",
        "file:///etc/../root/repo",
        "git@host:../../etc",
    ],
)
def test_it_refuses_hostile_repository_urls(url):
    errors = errors_of(GOOD.replace("https://git.example.com/makeitsaas/auth-instance", url))
    assert list(errors) == ["api.services[0].repository.url"]


def test_it_refuses_an_alias_bomb():
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    bomb += "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    errors = errors_of(bomb)
    assert "aliases" in errors["order"][0]


def test_it_refuses_python_tags():
    errors = errors_of('action: !!python/object/apply:os.system ["touch /tmp/pwned"]\nenvironment_id: "3"\n')
    assert "python/object/apply" in errors["order"][0]


def test_it_refuses_ten_megabytes_before_parsing():
    errors = errors_of(b"a: " + b"x" * (10 * 1024 * 1024))
    assert f"at most {MAX_BYTES}" in errors["order"][0]


def test_it_refuses_deep_nesting():
    errors = errors_of("a: " + "[" * 40 + "]" * 40)
    assert "nested deeper" in errors["order"][0]


def test_it_refuses_types_it_cannot_deploy_with_a_reason():
    errors = errors_of(
        GOOD.replace("type: python", "type: node", 1).replace("type: python\nfront", "type: cobol\nfront")
    )
    assert "cannot be deployed" in errors["api.services[0].type"][0]
    assert "not a service type" in errors["api.services[1].type"][0]


def test_it_refuses_duplicate_ids_paths_and_domains():
    text = GOOD.replace('id: "7"', 'id: "6"').replace(
        "manager-front.lab.example.com", "manager-api.lab.example.com"
    )
    text = text.replace(
        "path: /\n        repository:\n          url: 'git@",
        "path: /x\n        repository:\n          url: 'git@",
    )
    errors = errors_of(text)
    assert "already used" in errors["api.services[1].id"][0]
    assert "already listed" in errors["front.domains[0]"][0]


def test_a_delete_names_only_the_environment():
    assert parse_order("action: delete\nenvironment_id: 3\n").environment_id == "3"
    assert "leave out api" in errors_of(GOOD.replace('"update"', "delete"))["api"][0]
