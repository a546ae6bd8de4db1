"""Who gets what: every API endpoint and every page, for each actor, as one table.

A row is (method, path, what each actor gets, body). The answers are given in the order of ACTORS:
anonymous, owner (Olivia, Acme), member (Mia, Acme), other (Oscar, Globex), authorizer (Ada, Acme,
authorizer of team "web"), hostmaster (Hilda). For a list, "200" means the answer shows Acme's object
and "200-" that it answers but shows nothing of Acme; "200|503" allows either. A page sends an anonymous visitor to the login
page (302) and answers 404 for another customer's object; a wizard's step is reached by posting the
steps before it first. A new endpoint or page is one more row: the last two tests fail without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.urls import resolve

from tests.images.conftest import launch_body
from tests.security.conftest import ACTORS, ORDER, World, url_routes
from tests.web.test_images_pages import image_post, launch_post, target_post

pytestmark = pytest.mark.django_db

HOSTMASTER_APPS = {"provisioning", "bookings", "images", "applications", "orders"}


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # formatted with the world as `w`
    answers: str  # one status per actor, in the order of ACTORS
    body: Callable[[World], object] | None = None
    fmt: str = "json"  # json, yaml or form (pages)
    seen: str = ""  # for a list: the id of Acme's object that owner, member... must see
    page: bool = False  # a page: the actor's browser session, not its token
    given: tuple = ()  # (path, body) form posts sent first: a wizard's earlier steps

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _booking(w: World) -> dict:
    return {
        "project": w.project.pk,
        "type": "PRIVATE_CLOUD",
        "caption": "Pool 2",
        "resources": {"CPU": 1, "RAM": 1, "SSD": 25},
    }


def _launch(w: World) -> dict:
    return {**launch_body(name="api", regions=("local-1",), amount=1), "customer": w.acme.pk}


def _application(w: World) -> dict:
    return {
        "application": "blog",
        "team": "web",
        "authorizer": "ada",
        "provider": "local",
        "customer": w.acme.pk,
    }


API = [
    Row("GET", "/api/", "401 200 200 200 200 200"),
    Row("GET", "/api/operations/", "401 200 200 200- 200 200", seen="{w.operation.pk}"),
    Row("GET", "/api/operations/{w.operation.pk}/", "401 200 200 404 200 200"),
    Row(
        "POST",
        "/api/operations/{w.operation.pk}/signals/",
        "401 202 202 404 202 202",
        lambda w: {"name": "cancel"},
    ),
    Row(
        "POST",
        "/api/operations/{w.operation.pk}/signals/",
        "401 202 202 404 202 202",  # stored, but it decides nothing (see test_applications_forged_decision)
        lambda w: {
            "name": "decision",
            "payload": {"approved": True, "region": "local-1", "profile": "standard"},
        },
    ),
    Row("GET", "/api/projects/", "401 200 200 200- 200 200", seen="{w.project.pk}"),
    Row("GET", "/api/projects/{w.project.pk}/", "401 200 200 404 200 200"),
    Row("POST", "/api/projects/", "401 201 201 201 201 201", lambda w: {"caption": "New"}),
    Row(
        "POST",
        "/api/projects/",
        "401 201 201 400 201 201",
        lambda w: {"caption": "New", "customer": w.acme.pk},
    ),
    Row("GET", "/api/booking-items/", "401 200 200 200- 200 200", seen="{w.item.pk}"),
    Row("GET", "/api/booking-items/{w.item.pk}/", "401 200 200 404 200 200"),
    Row("POST", "/api/booking-items/", "401 201 201 400 201 201", _booking),
    Row("GET", "/api/hosting-assets/", "401 200 200 200- 200 200", seen="{w.asset.pk}"),
    Row(
        "GET",
        "/api/hosting-assets/?booking_item={w.item.pk}",
        "401 200 200 200- 200 200",
        seen="{w.asset.pk}",
    ),
    Row("GET", "/api/hosting-assets/{w.asset.pk}/", "401 200 200 404 200 200"),
    Row("GET", "/api/image-builds/", "401 200 200 200- 200 200", seen="{w.build.pk}"),
    Row("GET", "/api/image-builds/{w.build.pk}/", "401 200 200 404 200 200"),
    Row("POST", "/api/image-builds/", "401 201 201 400 201 201", _launch),
    Row("GET", "/api/reservations/", "401 200 200 200- 200 200", seen="{w.reservation.pk}"),
    Row("GET", "/api/reservations/{w.reservation.pk}/", "401 200 200 404 200 200"),
    Row("POST", "/api/reservations/{w.reservation.pk}/cancel/", "401 202 202 404 202 202"),
    Row("POST", "/api/reservations/{w.reservation.pk}/terminate/", "401 409 409 404 409 409"),
    Row("GET", "/api/pubkeys/", "401 200 200 200- 200 200", seen="{w.pubkey.pk}"),
    Row("GET", "/api/pubkeys/{w.pubkey.pk}/", "401 200 200 404 200 200"),
    Row(
        "POST",
        "/api/pubkeys/",
        "401 201 201 400 201 201",
        lambda w: {"name": "k", "body": w.pubkey.body, "customer": w.acme.pk},
    ),
    Row("GET", "/api/cloud-accounts/", "401 200 200 200- 200 200", seen="{w.account.pk}"),
    Row("GET", "/api/cloud-accounts/?provider=local", "401 200 200 200- 200 200", seen="{w.account.pk}"),
    Row("GET", "/api/cloud-accounts/{w.account.pk}/", "401 200 200 404 200 200"),
    Row(
        "POST",
        "/api/cloud-accounts/",
        "401 201 201 400 201 201",
        lambda w: {"provider": "local", "name": "lab2", "customer": w.acme.pk},
    ),
    Row("GET", "/api/application-requests/", "401 200 200 200- 200 200", seen="{w.request.pk}"),
    Row("GET", "/api/application-requests/{w.request.pk}/", "401 200 200 404 200 200"),
    Row("POST", "/api/application-requests/", "401 201 201 400 201 201", _application),
    Row(
        "POST",
        "/api/application-requests/{w.request.pk}/decision/",
        "401 403 403 404 200 200",
        lambda w: {"approved": False, "comment": "not now"},
    ),
    Row("POST", "/api/application-requests/{w.request.pk}/cancel/", "401 202 202 404 202 202", lambda w: {}),
    Row("GET", "/api/application-teams/", "401 200 200 200- 200 200", seen="{w.team.pk}"),
    Row("GET", "/api/application-teams/{w.team.pk}/", "401 200 200 404 200 200"),
    Row("GET", "/api/orders/", "401 200 200 200- 200 200", seen="{w.order.pk}"),
    Row("GET", "/api/orders/{w.order.pk}/", "401 200 200 404 200 200"),
    Row("POST", "/api/orders/", "401 201 201 201 201 201", lambda w: ORDER.format(env="new-env"), fmt="yaml"),
    # Acme's environment: its users are told an order of it still runs; nobody else may order it.
    Row(
        "POST",
        "/api/orders/",
        "401 409 409 400 409 400",
        lambda w: ORDER.format(env="acme-shop").replace("api.acme-shop", "www.acme-shop"),
        fmt="yaml",
    ),
    # Tearing Acme's environment down is Acme's alone, as is every environment (it has an owner).
    Row(
        "POST",
        "/api/orders/",
        "401 409 409 400 409 400",
        lambda w: 'action: delete\nenvironment_id: "acme-shop"\n',
        fmt="yaml",
    ),
    Row("GET", "/api/schema/", "200 200 200 200 200 200"),  # public, as documentation is
]


def _book_type(w: World) -> dict:
    return {"type": "PRIVATE_CLOUD", "caption": "Pool 2", "project": w.project.pk}


def _request_form(w: World) -> dict:
    return {**_application(w), "resources": ["bucket"], "time_limit_seconds": "60"}


# The wizards' earlier steps, posted by the same actor before the row's own request (answers unchecked).
BOOKING_STEPS = {
    "type": _book_type,
    "resources": lambda w: {"CPU": 1, "RAM": 1, "SSD": 25},
    "asset": lambda w: {},  # "create the hosting asset now" unticked
    "review": lambda w: {},
}
IMAGE_STEPS = {
    "image": lambda w: image_post(),
    "target": lambda w: target_post(regions=("local-1",)),
    "launch": lambda w: launch_post(amount="1"),
    "review": lambda w: {},
}


def _wizard_rows(base: str, steps: dict, answers: dict[str, tuple[str, str]]) -> list[Row]:
    """A GET and a POST row for each step of a wizard at `base`, each after the steps before it."""
    rows = []
    names = list(steps)
    for i, name in enumerate(names):
        given = tuple((f"{base}{before}/", steps[before]) for before in names[:i])
        get, post = answers[name]
        rows.append(Row("GET", f"{base}{name}/", get, page=True, given=given))
        rows.append(Row("POST", f"{base}{name}/", post, steps[name], fmt="form", page=True, given=given))
    return rows


PAGES = [
    Row("GET", "/", "302 200 200 200- 200 200", page=True, seen="/bookings/items/{w.item.pk}/"),
    Row(
        "GET", "/?fragment=1", "302 200 200 200- 200 200", page=True, seen="/reservations/{w.reservation.pk}/"
    ),
    Row("GET", "/login/", "200 200 200 200 200 200", page=True),
    Row("GET", "/logout/", "405 405 405 405 405 405", page=True),
    Row("POST", "/logout/", "302 302 302 302 302 302", lambda w: {}, fmt="form", page=True),
    # Public: 200 or 503 by what runs right now (workers, beat), never an authorization answer.
    Row("GET", "/health/", "200|503 200|503 200|503 200|503 200|503 200|503", page=True),
    # Counts only; the test client comes from 127.0.0.1, which METRICS_ALLOWED_NETWORKS lets in
    # (tests/ops: 403 from elsewhere without the token).
    Row("GET", "/metrics", "200 200 200 200 200 200", page=True),
    Row("GET", "/admin/", "302 302 302 302 302 200", page=True),
    Row("GET", "/operations/{w.operation.pk}/", "302 200 200 404 200 200", page=True),
    Row("GET", "/operations/{w.operation.pk}/?fragment=1", "302 200 200 404 200 200", page=True),
    # The booking wizard: another customer cannot book into Acme's project (400), so it never gets
    # past the first step; the hostmaster books for any customer.
    Row("GET", "/bookings/new/", "302 302 302 302 302 302", page=True),
    *_wizard_rows(
        "/bookings/new/",
        BOOKING_STEPS,
        {
            "type": ("302 200 200 200 200 200", "302 302 302 400 302 302"),
            "resources": ("302 200 200 302 200 200", "302 302 302 302 302 302"),
            "asset": ("302 200 200 302 200 200", "302 302 302 302 302 302"),
            "review": ("302 200 200 302 200 200", "302 302 302 302 302 302"),
        },
    ),
    Row("GET", "/bookings/items/{w.item.pk}/", "302 200 200 404 200 200", page=True),
    Row("GET", "/bookings/items/{w.item.pk}/status/", "302 200 200 404 200 200", page=True),
    Row("GET", "/bookings/items/{w.domain.pk}/record-added/", "302 405 405 405 405 405", page=True),
    Row(
        "POST",
        "/bookings/items/{w.domain.pk}/record-added/",
        "302 302 302 404 302 302",
        lambda w: {},
        fmt="form",
        page=True,
    ),
    # Build and launch: everyone with a customer builds for their own.
    Row("GET", "/images/", "302 200 200 200- 200 200", page=True, seen="/reservations/{w.reservation.pk}/"),
    Row("GET", "/images/build/", "302 302 302 302 302 302", page=True),
    Row("GET", "/images/build/reset/", "302 405 405 405 405 405", page=True),
    Row("POST", "/images/build/reset/", "302 302 302 302 302 302", lambda w: {}, fmt="form", page=True),
    *_wizard_rows(
        "/images/build/",
        IMAGE_STEPS,
        {
            "image": ("302 200 200 200 200 200", "302 302 302 302 302 302"),
            "target": ("302 200 200 200 200 200", "302 302 302 302 302 302"),
            "launch": ("302 200 200 200 200 200", "302 302 302 302 302 302"),
            "review": ("302 200 200 200 200 200", "302 302 302 302 302 302"),
        },
    ),
    Row("GET", "/reservations/{w.reservation.pk}/", "302 200 200 404 200 200", page=True),
    Row("GET", "/reservations/{w.reservation.pk}/live/", "302 200 200 404 200 200", page=True),
    # Application requests: the form offers the teams of the user's own customers and, as authorizer,
    # anyone of them but the user (the saga's pre-flight checks decide whether the team may ask).
    Row(
        "GET",
        "/applications/requests/",
        "302 200 200 200- 200 200",
        page=True,
        seen="/applications/requests/{w.request.pk}/",
    ),
    Row("GET", "/applications/requests/new/", "302 200 200 200 200 200", page=True),
    Row(
        "POST", "/applications/requests/new/", "302 302 302 400 400 400", _request_form, fmt="form", page=True
    ),
    Row("GET", "/applications/requests/{w.request.pk}/", "302 200 200 404 200 200", page=True),
    Row("GET", "/applications/requests/{w.request.pk}/live/", "302 200 200 404 200 200", page=True),
    Row("GET", "/applications/requests/{w.request.pk}/decision/", "302 200 200 404 200 200", page=True),
    Row(
        "POST",
        "/applications/requests/{w.request.pk}/decision/",
        "302 403 403 404 302 302",
        lambda w: {"approved": "false", "comment": "no"},
        fmt="form",
        page=True,
    ),
    # Environment orders: everyone with a customer checks and orders for their own; Acme's
    # environment is Acme's (its users are told an order of it runs), hostmasters see every one.
    Row("GET", "/orders/new/", "302 200 200 200 200 200", page=True),
    Row(
        "POST",
        "/orders/new/",
        "302 200 200 200 200 200",
        lambda w: {"text": ORDER.format(env="new-env"), "check": "1"},
        fmt="form",
        page=True,
    ),
    Row(
        "POST",
        "/orders/new/",
        "302 409 409 400 409 400",
        lambda w: {"text": ORDER.format(env="acme-shop"), "confirm": "1", "token": "t"},
        fmt="form",
        page=True,
    ),
    Row("GET", "/orders/{w.order.pk}/", "302 200 200 404 200 200", page=True),
    Row("GET", "/orders/{w.order.pk}/live/", "302 200 200 404 200 200", page=True),
    Row("GET", "/orders/environments/{w.order.environment.key}/", "302 200 200 404 200 200", page=True),
    Row(
        "GET", "/orders/environments/{w.order.environment.key}/delete/", "302 200 200 404 200 200", page=True
    ),
    Row(
        "POST",
        "/orders/environments/{w.order.environment.key}/delete/",
        "302 409 409 404 409 409",
        lambda w: {},
        fmt="form",
        page=True,
    ),
]


def _admin_rows() -> list[Row]:
    """Every model's admin list and the change page of its first object: hostmasters only (and only
    for the apps they look after: users and groups are the superuser's)."""
    rows = []
    for model in admin.site._registry:
        meta = model._meta
        answer = "200" if meta.app_label in HOSTMASTER_APPS else "403"
        rows.append(
            Row(
                "GET",
                f"/admin/{meta.app_label}/{meta.model_name}/",
                f"302 302 302 302 302 {answer}",
                page=True,
            )
        )
    return rows


ROWS = API + PAGES + _admin_rows()


@dataclass
class Case:
    row: Row
    actor: str
    expected: str = field(init=False)

    def __post_init__(self) -> None:
        self.expected = self.row.answers.split()[ACTORS.index(self.actor)]


CASES = [Case(row, actor) for row in ROWS for actor in ACTORS]


def _send(client, row: Row, path: str, world: World, body: object = None):
    if body is None:
        body = row.body(world) if row.body else None
    if row.method == "GET":
        return client.get(path)
    if row.fmt == "yaml":
        return client.generic("POST", path, body, content_type="application/yaml")
    if row.fmt == "form":
        return client.post(path, body)
    return client.post(path, body or {}, format="json")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.row.id}-{c.actor}" for c in CASES])
def test_it_answers_each_actor_exactly_what_it_may(case: Case, actors, world: World):
    row = case.row
    actor = actors[case.actor]
    path = world.format(row.path)
    client = actor.web if row.page else actor.api
    for before, body in row.given:
        client.post(before, body(world))
    answer = _send(client, row, path, world)
    status, sees = case.expected.rstrip("-"), not case.expected.endswith("-")
    allowed = {int(code) for code in status.split("|")}
    assert answer.status_code in allowed, (answer.status_code, getattr(answer, "content", b"")[:500])
    if row.seen and answer.status_code == 200 and row.page:
        assert (world.format(row.seen) in answer.content.decode()) == sees
    elif row.seen and answer.status_code == 200:
        ids = {str(item["id"]) for item in answer.json()["results"]}
        assert (world.format(row.seen) in ids) == sees, ids
    if answer.status_code == 401:
        assert answer["WWW-Authenticate"].startswith("Token")
    if answer.status_code == 302 and case.actor == "anonymous":
        assert "login" in answer["Location"]


def test_every_api_route_has_a_row():
    """A new endpoint without a row in the table fails here."""
    covered = {(r.method, r.path.split("?")[0]) for r in API}
    api = {r for r in url_routes() if r.startswith("api/") and "format" not in r}
    shapes = {_shape(path) for _, path in covered}
    missing = sorted(r for r in api if _shape("/" + r) not in shapes)
    assert not missing, f"no row in the table for: {missing}"


def test_every_page_has_a_row(world: World):
    """A new page (any route outside the API and the admin) without a row in the table fails here."""
    covered = {resolve(world.format(r.path).split("?")[0]).route for r in PAGES}
    pages = {r for r in url_routes() if not r.startswith(("api/", "admin/"))}
    missing = sorted(pages - covered)
    assert not missing, f"no row in the table for the pages: {missing}"


def _shape(path: str) -> str:
    import re

    path = re.sub(r"\{w\.[a-z]+\.pk\}", "X", path)
    path = re.sub(r"\(\?P<pk>[^)]*\)", "X", path)
    path = re.sub(r"<[^>]+>", "X", path)
    return path.replace("^", "").replace("$", "").rstrip("/")


KEYED = [Case(row, actor) for row in API if row.method == "POST" for actor in ACTORS]


@pytest.mark.parametrize("case", KEYED, ids=[f"{c.row.id}-{c.actor}" for c in KEYED])
def test_with_an_idempotency_key_each_actor_gets_the_same_answer_and_a_repeat_replays_it(
    case: Case, actors, world: World
):
    """Every POST of the API with an `Idempotency-Key`: the answer of the table; sent again, a success
    is the same answer replayed (nothing more is created) and a refusal is refused again."""
    import uuid

    row = case.row
    client = actors[case.actor].api
    path = world.format(row.path)
    client.credentials(**client._credentials, HTTP_IDEMPOTENCY_KEY=f'"{uuid.uuid4()}"')
    body = row.body(world) if row.body else None  # the same body twice (a launch's key is random)
    try:
        first = _send(client, row, path, world, body)
        allowed = {int(code) for code in case.expected.rstrip("-").split("|")}
        assert first.status_code in allowed, (first.status_code, first.content[:500])
        again = _send(client, row, path, world, body)
    finally:
        client.credentials(**{k: v for k, v in client._credentials.items() if k != "HTTP_IDEMPOTENCY_KEY"})
    assert again.status_code == first.status_code, again.content[:500]
    if 200 <= first.status_code < 300:
        assert again["Idempotent-Replayed"] == "true"
        assert again.content == first.content
    else:
        assert "Idempotent-Replayed" not in again
