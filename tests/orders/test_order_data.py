"""Order data is data: a value from an order never reaches Ansible in a place it renders.

Two walls, each tested alone: the order's validation refuses template and quoting characters in every
field that reaches a playbook (a 400 naming the field), and the playbook runs take every value as
`!unsafe`, so that a template that got past validation is deployed as the text it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning.orders import ansible, conf
from provisioning.orders.models import Environment, Order
from tests.fixtures.net import free_port
from tests.fixtures.orders import running

pytestmark = pytest.mark.django_db

ORDER = """\
action: update
environment_id: "{env}"
api:
  domains: ["{domain}"]
  services:
    - id: "{sid}"
      path: "{path}"
      repository: {{url: "{url}", version: "{version}"}}
      roles: ["{role}"]
      variables: ["{variable}"]
      type: python
"""
CLEAN = {
    "env": "shop",
    "domain": "api.shop.example.com",
    "sid": "api",
    "path": "/core",
    "url": "https://git.example.com/shop/api",
    "version": "v1",
    "role": "auth",
    "variable": "JWT_SECRET",
}
FIELDS = {
    "env": "environment_id",
    "domain": "api.domains[0]",
    "sid": "api.services[0].id",
    "path": "api.services[0].path",
    "url": "api.services[0].repository.url",
    "version": "api.services[0].repository.version",
    "role": "api.services[0].roles[0]",
    "variable": "api.services[0].variables[0]",
}


def payloads(marker: Path) -> list[str]:
    """Text that creates `marker` if Ansible, Jinja or a shell ever interprets it."""
    return [
        f"x{{{{ lookup('pipe','touch {marker}') }}}}",
        f"x{{% set _ = lookup('pipe','touch {marker}') %}}",
        f"x$(touch {marker})",
        f"x`touch {marker}`",
        "x'y",
    ]


@pytest.mark.parametrize("key", list(FIELDS))
def test_it_refuses_template_characters_in_every_field_that_reaches_a_playbook(owner, tmp_path, key):
    marker = tmp_path / "marker"
    for payload in payloads(marker):
        values = {**CLEAN, key: CLEAN[key] + payload if key != "url" else CLEAN["url"] + "/" + payload}
        body = ORDER.format(**{k: v.replace('"', '\\"') for k, v in values.items()})
        answer = owner[1].generic("POST", "/api/orders/", body, content_type="application/yaml")
        assert answer.status_code == 400, (key, payload, answer.content)
        assert set(answer.json()) == {FIELDS[key]}, (payload, answer.json())
    assert not Order.objects.exists() and not Environment.objects.exists()
    assert not marker.exists()


def test_the_clean_order_of_these_tests_is_accepted(owner):
    answer = owner[1].generic("POST", "/api/orders/", ORDER.format(**CLEAN), content_type="application/yaml")
    assert answer.status_code == 201, answer.content


@pytest.mark.django_db(transaction=True)
def test_a_template_that_got_past_validation_is_deployed_as_text(service_repo, tmp_path, leave_no_service):
    marker = tmp_path / "marker"
    # No space in it (git would take the URL to end there): the shell's redirection creates the marker.
    template = f"{{{{lookup('pipe','id>{marker}')}}}}"
    # A real repository whose path is a template: cloning it proves the URL was taken literally
    # (rendered, it would name repo-49, which does not exist). No quotes: the git module splits its
    # command line as a shell would.
    repo = service_repo("repo-{{7*7}}", "v1")
    workdir = conf.environments_dir() / "literal" / f"svc-{template}"
    port = free_port()
    deployed = ansible.deploy_service(
        ident="literal-deploy",
        workdir=str(workdir),
        repository_url=repo.url,
        version="v1",
        port=port,
        health_path="/",
        command=["python3", "app.py"],
        env_file=f"PORT='{port}'\n",
    )
    try:
        assert running(deployed["pid"]) and (workdir / "app" / "app.py").is_file()
        assert not marker.exists()
        _deploy_a_templated_version(workdir, repo, port, template)
    finally:
        # The template's '/' nest the folder deeper than leave_no_service looks: stop it here.
        ansible.stop_service(ident="literal-stop", workdir=str(workdir))
    assert not running(deployed["pid"]) and not workdir.exists()
    assert not marker.exists()


def _deploy_a_templated_version(workdir: Path, repo, port: int, template: str) -> None:
    """A version that is a template: git is asked for that very ref, and says it has none."""
    with pytest.raises(ansible.PlaybookFailed) as failed:
        ansible.deploy_service(
            ident="literal-version",
            workdir=str(workdir),
            repository_url=repo.url,
            version=f"v1{template}",
            port=port,
            health_path="/",
            command=["python3", "app.py"],
            env_file=f"PORT='{port}'\n",
        )
    assert "v1{{lookup" in failed.value.message


def test_vars_files_mark_every_string_unsafe():
    text = ansible.unsafe_vars_yaml({"url": "{{ x }}", "command": ["a", "{% y %}"], "port": 80})
    assert text.count("!unsafe") == 3 and "port: 80" in text
