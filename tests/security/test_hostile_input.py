"""Hostile input: every one is refused with a clear 4xx, nothing is stored (rows counted before and
after) and nothing runs (a marker file that the payloads would create never appears)."""

from __future__ import annotations

import copy
import json

import pytest
from django.apps import apps

from tests.security.conftest import ORDER

pytestmark = pytest.mark.django_db

APPS = ("provisioning", "bookings", "images", "applications", "orders")


def row_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for label in APPS
        for model in apps.get_app_config(label).get_models()
    }


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran a shell command"


@pytest.fixture
def olivia(actors, world):
    """Acme's owner, with Acme's world stored; the counts are taken after it."""
    return actors["owner"].api


def refused(answer, *statuses: int) -> dict:
    assert answer.status_code in (statuses or (400,)), (answer.status_code, answer.content[:300])
    body = answer.json()
    assert body, "a refusal says why"
    return body


def post_raw(client, path: str, text: str | bytes, content_type: str = "application/json"):
    return client.generic("POST", path, text, content_type=content_type)


def test_a_body_over_the_upload_limit_answers_413_and_is_not_read(olivia, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    before = row_counts()
    body = {
        "project": world.project.pk,
        "type": "PRIVATE_CLOUD",
        "caption": "big",
        "resources": {"x": "y" * 100_000},
    }
    answer = post_raw(olivia, "/api/booking-items/", json.dumps(body))
    assert refused(answer, 413)["detail"].endswith(f"at most {64 * 1024} are accepted.")
    answer = post_raw(olivia, "/api/orders/", "x" * 70_000, "application/yaml")
    assert answer.status_code == 413
    assert row_counts() == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/cloud-accounts/?provider=loc%00al",
        "/api/cloud-accounts/?provider=%00",
        "/api/booking-items/?page=1%00",
        "/?items=%00",
    ],
)
def test_a_nul_character_in_the_query_answers_400(olivia, path):
    assert "NUL" in refused(olivia.get(path))["detail"]


@pytest.mark.parametrize("depth", [10_000, 100])
def test_deeply_nested_json_answers_400(olivia, world, depth):
    before = row_counts()
    text = (
        f'{{"project": {world.project.pk}, "type": "PRIVATE_CLOUD", "caption": "deep", "resources": '
        + "[" * depth
        + "]" * depth
        + "}"
    )
    body = refused(post_raw(olivia, "/api/booking-items/", text))
    assert "nest deeper than" in body["detail"]
    assert row_counts() == before


@pytest.mark.parametrize(
    "path, body",
    [
        (
            "/api/operations/{w.operation.pk}/signals/",
            '{{"name": "cancel", "payload": {{"why": "a\\u0000b"}}}}',
        ),
        ("/api/operations/{w.operation.pk}/signals/", '{{"name": "cancel", "payload": {{"a\\u0000": 1}}}}'),
        (
            "/api/booking-items/",
            '{{"project": {w.project.pk}, "type": "PRIVATE_CLOUD", "caption": "c", "resources": '
            '{{"CPU": 1, "RAM": 1, "SSD": 25}}, "hosting_asset": {{"notes": ["\\u0000"]}}}}',
        ),
    ],
)
def test_a_nul_character_anywhere_in_json_answers_400(olivia, world, path, body):
    """PostgreSQL stores no NUL in jsonb: it is refused before anything is stored (it was a 500)."""
    before = row_counts()
    answer = refused(post_raw(olivia, world.format(path), world.format(body)))
    assert "NUL" in answer["detail"]
    assert row_counts() == before


YAML_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
action: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
"""


@pytest.mark.parametrize(
    "text",
    [
        YAML_BOMB,
        "action: !!python/object/apply:os.system ['touch {marker}']\nenvironment_id: x\n",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
        "action: !!python/name:os.system\n",
        "action: update\nenvironment_id: !!binary aGVsbG8=\n",
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "\x00\x01\x02 binary",
    ],
    ids=["billion-laughs", "python-apply", "python-new", "python-name", "binary-tag", "deep", "binary"],
)
def test_yaml_bombs_and_python_tags_are_refused(olivia, marker, text):
    before = row_counts()
    body = refused(
        post_raw(olivia, "/api/orders/", text.replace("{marker}", str(marker)), "application/yaml")
    )
    assert set(body) <= {"order", "action", "environment_id", "detail"} and body
    assert row_counts() == before


def _order_with(**changes: str) -> str:
    text = ORDER.format(env="shop")
    for old, new in changes.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("https://git.example.com/shop/api", "file:///../../etc/passwd", "api.services[0].repository.url"),
        (
            "https://git.example.com/shop/api",
            "https://git.example.com/../../../etc",
            "api.services[0].repository.url",
        ),
        ("https://git.example.com/shop/api", "ext::sh -c touch% {marker}", "api.services[0].repository.url"),
        (
            "https://git.example.com/shop/api",
            "--upload-pack=touch {marker}",
            "api.services[0].repository.url",
        ),
        (
            "https://git.example.com/shop/api",
            "https://git.example.com/a;touch {marker}",
            "api.services[0].repository.url",
        ),
        ("path: /", "path: /../../etc", "api.services[0].path"),
        ("path: /", "path: /static/..%2f..%2fetc", "api.services[0].path"),
        ("path: /", "path: '/a/$(touch {marker})'", "api.services[0].path"),
        ("version: v1", "version: '../../v1'", "api.services[0].repository.version"),
        ("version: v1", "version: 'v1; touch {marker}'", "api.services[0].repository.version"),
        ("environment_id: shop", "environment_id: '$(touch {marker})'", "environment_id"),
        ("environment_id: shop", "environment_id: '../shop'", "environment_id"),
        ("environment_id: shop", 'environment_id: "shop\'; DROP TABLE orders_order; --"', "environment_id"),
        ('id: "1"', "id: '1`touch {marker}`'", "api.services[0].id"),
        (
            "type: python",
            "type: python\n      variables: ['A;touch {marker}']",
            "api.services[0].variables[0]",
        ),
    ],
)
def test_traversal_and_metacharacters_in_an_order_are_refused_by_field(olivia, marker, old, new, field):
    before = row_counts()
    body = refused(
        post_raw(
            olivia,
            "/api/orders/",
            _order_with(**{old: new.replace("{marker}", str(marker))}),
            "application/yaml",
        )
    )
    assert field in body, body
    assert row_counts() == before


LINE_BREAKS = [
    "Shop\r\nSet-Cookie: session=stolen",
    "Shop\nX-Injected: 1",
    "Shop\rBcc: all@example.com",
    "Shop\u2028next",
]


@pytest.mark.parametrize("value", LINE_BREAKS)
@pytest.mark.parametrize(
    "path, field, body",
    [
        ("/api/projects/", "caption", {}),
        (
            "/api/booking-items/",
            "caption",
            {"type": "PRIVATE_CLOUD", "resources": {"CPU": 1, "RAM": 1, "SSD": 25}},
        ),
        ("/api/pubkeys/", "name", {"body": "ssh-ed25519 AAAA"}),
        ("/api/cloud-accounts/", "name", {"provider": "local"}),
        ("/api/image-builds/", "name", {"manifest": {}, "launch": {}}),
        ("/api/application-requests/", "authorizer", {"application": "shop", "team": "web"}),
        ("/api/application-requests/", "application", {"authorizer": "ada", "team": "web"}),
    ],
)
def test_line_breaks_in_names_and_captions_are_refused(olivia, world, path, field, body, value):
    before = row_counts()
    if path == "/api/booking-items/":
        body = {**body, "project": world.project.pk}
    answer = olivia.post(path, {**body, field: value}, format="json")
    assert field in refused(answer), answer.json()
    assert row_counts() == before


@pytest.mark.parametrize(
    "identifier",
    [
        "vm1234; touch {marker}",
        "vm1234$(touch {marker})",
        "vm1234' OR '1'='1",
        "vm1234`touch {marker}`",
        "../vm1234",
    ],
)
def test_metacharacters_in_an_asset_identifier_are_refused(olivia, world, marker, identifier):
    before = row_counts()
    body = {
        "project": world.project.pk,
        "parent_item": None,
        "type": "MANAGED_SERVER",
        "caption": "server",
        "resources": {"CPU": 2, "RAM": 4, "SSD": 50},
        "hosting_asset": {"identifier": identifier.replace("{marker}", str(marker))},
    }
    refused(olivia.post("/api/booking-items/", body, format="json"))
    assert row_counts() == before


@pytest.mark.parametrize(
    "where, value",
    [
        ("manifest.customizations.files[0].path", "/etc/../../root/.ssh/authorized_keys"),
        ("manifest.customizations.files[0].path", "/tmp/$(touch {marker})"),
        ("manifest.packages[0]", "nginx; touch {marker}"),
        ("manifest.customizations.users[0].name", "ops$(touch {marker})"),
        ("launch.instance_type", "small; touch {marker}"),
    ],
)
def test_traversal_and_metacharacters_in_a_build_are_refused_by_field(olivia, marker, where, value):
    from tests.images.conftest import launch_body

    body = copy.deepcopy(launch_body(name="web", regions=("local-1",), amount=1))  # shares MANIFEST
    value = value.replace("{marker}", str(marker))
    section, *rest = where.split(".")
    target = body[section]
    for part in rest[:-1]:
        name, _, index = part.partition("[")
        target = target[name][int(index[:-1])] if index else target[name]
    last, _, index = rest[-1].partition("[")
    if index:
        target[last][int(index[:-1])] = value
    else:
        target[last] = value
    before = row_counts()
    answer = refused(olivia.post("/api/image-builds/", body, format="json"))
    assert where in answer, answer
    assert row_counts() == before


def test_sql_metacharacters_in_free_text_are_stored_as_text(olivia):
    """A caption is text, not an identifier: quotes are kept as written and run nowhere."""
    caption = "Robert'); DROP TABLE bookings_project;--"
    answer = olivia.post("/api/projects/", {"caption": caption}, format="json")
    assert answer.status_code == 201 and answer.json()["caption"] == caption
    assert olivia.get("/api/projects/").status_code == 200


@pytest.mark.parametrize("provider", ["aws'--", "nope", "loc al"])
def test_a_filter_of_no_provider_answers_an_empty_list(olivia, world, provider):
    answer = olivia.get("/api/cloud-accounts/", {"provider": provider})
    assert answer.status_code == 200 and answer.json()["results"] == []
    assert olivia.get("/api/cloud-accounts/", {"provider": "local"}).json()["count"] == 1


@pytest.mark.parametrize(
    "body", ["T\tAAAA", "ssh-foo AAAAC3NzaC1lZDI1NTE5", "ecdsa-sha2-nistp999 AAAA", "½ x"]
)
def test_a_public_key_of_an_unknown_type_answers_400(olivia, body):
    """The key's type names an algorithm nobody supports: a 400 that says which are (it was a 500)."""
    before = row_counts()
    answer = refused(olivia.post("/api/pubkeys/", {"name": "k", "body": body}, format="json"))
    assert "body" in answer, answer
    assert row_counts() == before
