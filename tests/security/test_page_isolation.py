"""No page shows one customer's data to anyone else: every page of the site, found by walking the URL
resolver (a new page is covered the day it is added), fetched as a visitor who is not logged in and
as another customer, for two customers that each have a domain booking waiting for its DNS record, a
server, a build and launch, keys and cloud accounts, a team with an application request and an
environment order, each named with strings of their own.

No worker runs: the services store the rows and enqueue on commit, which never comes in these tests,
so every saga stays at its start.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.test import Client

from bookings.models import BookingItem, Project
from bookings.services import booking_item_create
from bookings.views import STEPS as BOOKING_STEPS
from images.models import Reservation
from images.services import cloud_account_create, image_build_launch, public_key_create
from images.wizard import STEPS as IMAGE_STEPS
from provisioning.applications.models import ApplicationRequest
from provisioning.applications.services import application_request_create, team_create
from provisioning.models import Customer, Operation
from provisioning.orders.models import Order
from provisioning.orders.services import order_create
from provisioning.ratelimit import ACTIONS, rate_limit_reset
from provisioning.services import api_user_create_or_update
from tests.bookings.conftest import make_server, make_webspace
from tests.images.conftest import launch_body
from tests.providers.conftest import ssh_public_key
from tests.security.conftest import ORDER, url_routes
from tests.web.test_images_pages import image_post, launch_post, target_post

pytestmark = pytest.mark.django_db

# Pages anyone may fetch: they show nothing of a customer. /health/ answers 200 or 503 by what runs;
# /metrics answers to this host (the test client's 127.0.0.1), a token or a hostmaster, with counts only.
PUBLIC = {"login/", "logout/", "health/", "metrics"}
QUERIES = ("", "?fragment=1", "?for=decision")  # the fragments the pages' script fetches


@dataclass
class Tenant:
    """One customer, its people and one object of each kind, every name carrying `marker`."""

    marker: str
    customer: Customer
    owner: object
    project: Project
    domain: BookingItem  # a domain setup waiting for its DNS record
    server: BookingItem
    reservation: Reservation
    request: ApplicationRequest
    order: Order
    strings: list[str] = field(default_factory=list)  # what no one else may ever see

    @property
    def operations(self) -> list[Operation]:
        return [
            self.domain.created_event.operation,
            self.reservation.operation,
            self.request.operation,
            self.order.operation,
        ]

    def client(self) -> Client:
        client = Client()
        client.force_login(self.owner)
        return client


def _user(username: str, customer: str, role: str = "owner"):
    user, _token = api_user_create_or_update(username=username, customer_name=customer, role=role)
    return user


def make_tenant(dns, name: str, marker: str, server: str, webspace: str) -> Tenant:
    owner = _user(f"olivia-{marker}", name)
    member = _user(f"mia-{marker}", name, role="member")
    authorizer = _user(f"ada-{marker}", name, role="member")
    customer = Customer.objects.get(name=name)
    project = Project.objects.create(customer=customer, caption=f"Project {marker}")
    server_asset = make_server(project, server)
    make_webspace(project, webspace, server=server_asset)
    dns.add(f"{marker}.org", "A", "192.0.2.10")  # registered: its setup waits for the TXT record
    domain = booking_item_create(
        user=owner,
        project=project,
        type="DOMAIN_SETUP",
        caption=f"Shop {marker}",
        resources={"domainName": f"shop.{marker}.org"},
        hosting_asset={"webspace": webspace},
    )
    domain = BookingItem.objects.select_related("created_event__operation").get(pk=domain.pk)
    assert domain.created_event.waiting_for == "customer", domain.created_event.status_message
    key = ssh_public_key()
    public_key_create(customer=customer, name=f"key-{marker}", body=key)
    cloud_account_create(customer=customer, provider="local", name=f"lab-{marker}")
    body = launch_body(name=f"image-{marker}", regions=("local-1",), amount=1, public_key=ssh_public_key())
    launched = image_build_launch(customer=customer, user=owner, **body)
    team_create(customer=customer, name=f"team-{marker}", members=[member], authorizers=[authorizer])
    request = application_request_create(
        requester=member,
        customer=customer,
        team=f"team-{marker}",
        application=f"app-{marker}",
        authorizer=authorizer.username,
        provider="local",
    )
    order = order_create(text=ORDER.format(env=f"env-{marker}"), customer=customer, user=owner)
    for action in ACTIONS:
        rate_limit_reset(customer=customer, action=action)
    strings = [
        marker,
        server,
        webspace,
        domain.resources["verificationCode"],
        key.split()[1],
        body["launch"]["public_key"].split()[1],
        f"lab-{marker}",
    ]
    return Tenant(
        marker=marker,
        customer=customer,
        owner=owner,
        project=project,
        domain=domain,
        server=server_asset.booking_item,
        reservation=launched.reservation,
        request=request,
        order=order,
        strings=strings,
    )


@pytest.fixture
def acme(dns_records) -> Tenant:
    return make_tenant(dns_records, "Acme", "xqacme", "vm7101", "acq00")


@pytest.fixture
def globex(dns_records) -> Tenant:
    return make_tenant(dns_records, "Globex", "xqglobex", "vm7202", "glq00")


# --- The pages, from the URL resolver --------------------------------------------------------------

# How a page's path parameters are filled, by the path before the first one: an object's id (each of
# the tenant's objects of that kind) or a wizard's step names.
OBJECTS: dict[str, Callable[[Tenant], list]] = {
    "operations/": lambda t: [op.pk for op in t.operations],
    "bookings/items/": lambda t: [t.domain.pk, t.server.pk],
    "reservations/": lambda t: [t.reservation.pk],
    "applications/requests/": lambda t: [t.request.pk],
    "orders/": lambda t: [t.order.pk],
    "orders/environments/": lambda t: [t.order.environment.key],
}
STEPS: dict[str, list[str]] = {
    "bookings/new/": [name for name, _title in BOOKING_STEPS],
    "images/build/": list(IMAGE_STEPS),
}
_PARAMETER = re.compile(r"<(?:\w+:)?\w+>")


def _routes() -> list[str]:
    return sorted(r for r in url_routes() if not r.startswith(("api/", "admin/")))


@dataclass(frozen=True)
class Page:
    route: str
    path: str
    of_object: bool  # an object's page: another customer gets 404


def pages_of(tenant: Tenant) -> list[Page]:
    """Every page of the site, its parameters filled from `tenant`'s objects."""
    pages = []
    for route in _routes():
        found = _PARAMETER.search(route)
        if found is None:
            pages.append(Page(route, "/" + route, False))
            continue
        prefix = route[: found.start()]
        assert len(_PARAMETER.findall(route)) == 1, f"{route}: say in this test how to fill its parameters"
        if prefix in OBJECTS:
            values, of_object = OBJECTS[prefix](tenant), True
        elif prefix in STEPS:
            values, of_object = STEPS[prefix], False
        else:
            raise AssertionError(f"{route}: say in OBJECTS or STEPS of this test how to fill its parameter")
        pages.extend(Page(route, "/" + _PARAMETER.sub(str(v), route), of_object) for v in values)
    return pages


def _walk_wizards(client: Client, tenant: Tenant) -> None:
    """Take the viewer's own wizards up to their last step, so that every step shows its choices (the
    projects, parent items, webspaces, accounts and keys offered)."""
    for path, data in (
        (
            "/bookings/new/type/",
            {"type": "DOMAIN_SETUP", "caption": "mine", "project": tenant.project.pk},
        ),
        ("/bookings/new/resources/", {"domainName": f"www.{tenant.marker}.org"}),
        ("/bookings/new/asset/", {}),
        ("/images/build/image/", image_post()),
        ("/images/build/target/", target_post(regions=("local-1",))),
        ("/images/build/launch/", launch_post(amount="1")),
    ):
        answer = client.post(path, data)
        assert answer.status_code == 302, (path, answer.content.decode()[:2000])


def _fetch_all(client: Client, pages: list[Page], post: bool = True) -> dict[str, object]:
    """GET every page (with the fragments' queries) and, with `post`, POST an empty form to it."""
    answers = {}
    for page in pages:
        for query in QUERIES:
            answers[f"GET {page.path}{query}"] = client.get(page.path + query)
        if post and page.route not in PUBLIC:
            answers[f"POST {page.path}"] = client.post(page.path, {})
    return answers


def _leaks(answers: dict[str, object], strings: list[str]) -> list[str]:
    return [
        f"{request}: {s!r}"
        for request, answer in answers.items()
        for s in strings
        if s in answer.content.decode(errors="replace") or s in answer.get("Location", "")
    ]


# --- The tests ---------------------------------------------------------------------------------------


def test_every_page_sends_a_visitor_who_is_not_logged_in_to_the_login_page(acme):
    pages = pages_of(acme)
    answers = _fetch_all(Client(), [p for p in pages if p.route not in PUBLIC])
    wrong = {r: a.status_code for r, a in answers.items() if a.status_code != 302}
    assert not wrong, wrong
    elsewhere = {
        r: a["Location"] for r, a in answers.items() if not a["Location"].startswith("/login/?next=")
    }
    assert not elsewhere, elsewhere
    public = _fetch_all(Client(), [p for p in pages if p.route in PUBLIC])
    assert not _leaks(public, acme.strings)


@pytest.mark.parametrize("owner_name, viewer_name", [("acme", "globex"), ("globex", "acme")])
def test_another_customer_gets_404_on_the_objects_and_sees_nothing_of_them_anywhere(
    owner_name, viewer_name, request
):
    owner, viewer = request.getfixturevalue(owner_name), request.getfixturevalue(viewer_name)
    client = viewer.client()
    _walk_wizards(client, viewer)
    theirs = [p for p in pages_of(owner) if p.of_object]
    answers = _fetch_all(client, theirs)
    # A GET of an action that takes only POSTs answers 405 whatever the id: that tells nothing.
    allowed = {"GET": (404, 405), "POST": (404,)}
    not_found = {r: a.status_code for r, a in answers.items() if a.status_code not in allowed[r.split()[0]]}
    assert not not_found, not_found
    # Every page of the viewer's own (its lists, wizards, objects and fragments) shows its own data
    # and never the other's.
    own = _fetch_all(client, [p for p in pages_of(viewer) if p.route not in PUBLIC], post=False)
    errors = {r: a.status_code for r, a in own.items() if a.status_code >= 500}
    assert not errors, errors
    assert not _leaks(own, owner.strings)
    assert not _leaks(answers, owner.strings)


def test_a_customer_sees_its_own_data_on_its_pages(acme, globex):
    client = acme.client()
    home = client.get("/").content.decode()
    for shown in (
        f"Shop {acme.marker}",
        "server vm7101",
        f"image-{acme.marker}",
        f"team-{acme.marker}/app-{acme.marker}",
        f"env-{acme.marker}",
    ):
        assert shown in home, shown
    for page in pages_of(acme):
        if page.of_object:
            answer = client.get(page.path)
            assert answer.status_code in (200, 405), (page.path, answer.status_code)
    expected = [
        (f"/bookings/items/{acme.domain.pk}/", f"shop.{acme.marker}.org"),
        (f"/bookings/items/{acme.domain.pk}/", acme.domain.resources["verificationCode"]),  # the TXT record
        (f"/bookings/items/{acme.domain.pk}/status/", acme.domain.resources["verificationCode"]),
        (f"/reservations/{acme.reservation.pk}/", f"image-{acme.marker}"),
        (f"/applications/requests/{acme.request.pk}/", f"app-{acme.marker}"),
        ("/images/", f"image-{acme.marker}"),
        ("/applications/requests/", f"app-{acme.marker}"),
    ]
    for path, shown in expected:
        assert shown in client.get(path).content.decode(), (path, shown)
    # An operation's page links to what it serves, and that page is there.
    for operation, page in (
        (acme.domain.created_event.operation, f"/bookings/items/{acme.domain.pk}/"),
        (acme.reservation.operation, f"/reservations/{acme.reservation.pk}/"),
        (acme.request.operation, f"/applications/requests/{acme.request.pk}/"),
    ):
        assert f'href="{page}"' in client.get(f"/operations/{operation.pk}/").content.decode(), page
    _walk_wizards(client, acme)
    offered = {
        "/bookings/new/type/": acme.project.caption,
        "/bookings/new/asset/": "acq00",
        "/images/build/target/": f"lab-{acme.marker}",
        "/images/build/launch/": f"key-{acme.marker}",
        "/applications/requests/new/": f"team-{acme.marker}",
    }
    for path, shown in offered.items():
        assert shown in client.get(path).content.decode(), (path, shown)
