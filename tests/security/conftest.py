"""Actors and a small world of Acme's objects for the security tests.

The actors: nobody (anonymous), Olivia (owner of Acme), Mia (member of Acme, she submits application
requests), Oscar (owner of Globex, another customer), Ada (a member of Acme and the authorizer of its
team "web") and Hilda (a hostmaster). Acme's world is made through the services, with no worker: every
saga stays pending.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import get_resolver
from rest_framework.test import APIClient

from bookings.models import BookingItem, HostingAsset, Project
from bookings.services import booking_item_create
from images.models import CloudAccount, ImageBuild, PublicKey, Reservation
from images.services import cloud_account_create, image_build_launch, public_key_create
from provisioning.applications.models import ApplicationRequest, Team
from provisioning.applications.services import application_request_create, team_create
from provisioning.models import Customer, Operation
from provisioning.orders.models import Order
from provisioning.orders.services import order_create
from provisioning.ratelimit import ACTIONS, rate_limit_reset
from provisioning.services import api_user_create_or_update
from tests.bookings.conftest import make_server, make_webspace
from tests.fixtures.actors import client_for
from tests.fixtures.orders import (  # noqa: F401 (fixtures of the secrets test)
    leave_no_service,
    orders_settings,
    orders_worker,
    service_repo,
)
from tests.images.conftest import launch_body
from tests.providers.conftest import ssh_public_key


def url_routes() -> set[str]:
    """Every URL pattern of the project, as the resolver names it ("bookings/items/<int:pk>/")."""
    routes = set()

    def walk(patterns, prefix=""):
        for p in patterns:
            if hasattr(p, "url_patterns"):
                walk(p.url_patterns, prefix + str(p.pattern))
            else:
                routes.add(prefix + str(p.pattern))

    walk(get_resolver().url_patterns)
    return routes


ACTORS = ("anonymous", "owner", "member", "other", "authorizer", "hostmaster")

ORDER = """\
action: update
environment_id: {env}
api:
  domains: [api.{env}.example.com]
  services:
    - id: "1"
      path: /
      repository: {{url: 'https://git.example.com/shop/api', version: v1}}
      type: python
"""


@dataclass
class Actor:
    name: str
    user: object | None
    token: str | None
    api: APIClient  # token authentication
    web: APIClient  # a logged-in browser session (for pages and the admin)


def _actor(name: str, username: str | None = None, customer: str = "", **kwargs) -> Actor:
    if username is None:
        return Actor(name, None, None, APIClient(), APIClient())
    user, token = api_user_create_or_update(username=username, customer_name=customer, **kwargs)
    user.email = f"{username}@example.com"
    user.save(update_fields=["email"])
    web = APIClient()
    web.force_login(user)
    return Actor(name, user, token, client_for(token), web)


@pytest.fixture
def actors(db) -> dict[str, Actor]:
    made = {
        "anonymous": _actor("anonymous"),
        "owner": _actor("owner", "olivia", "Acme"),
        "member": _actor("member", "mia", "Acme", role="member"),
        "other": _actor("other", "oscar", "Globex"),
        "authorizer": _actor("authorizer", "ada", "Acme", role="member"),
        "hostmaster": _actor("hostmaster", "hilda", "Hosting", hostmaster=True),
    }
    for customer in Customer.objects.all():
        for action in ACTIONS:
            rate_limit_reset(customer=customer, action=action)
    return made


@dataclass
class World:
    """One object of each kind, all Acme's."""

    acme: Customer
    globex: Customer
    project: Project
    item: BookingItem
    asset: HostingAsset
    domain: BookingItem  # a domain setup whose creation waits for its DNS record
    build: ImageBuild
    reservation: Reservation
    pubkey: PublicKey
    account: CloudAccount
    team: Team
    request: ApplicationRequest
    order: Order
    operation: Operation  # the application request's

    def format(self, template: str) -> str:
        return template.format(w=self)


@pytest.fixture
def world(actors, dns_records) -> World:
    acme = Customer.objects.get(name="Acme")
    owner, member, authorizer = (actors[n].user for n in ("owner", "member", "authorizer"))
    project = Project.objects.create(customer=acme, caption="Shop")
    asset = make_server(project, "vm1001")
    make_webspace(project, "abc00", server=asset)
    dns_records.add("acme-corp.org", "A", "192.0.2.10")  # registered: its setup waits for the TXT record
    domain = booking_item_create(
        user=owner,
        project=project,
        type="DOMAIN_SETUP",
        caption="shop.acme-corp.org",
        resources={"domainName": "shop.acme-corp.org"},
        hosting_asset={"webspace": "abc00"},
    )
    body = launch_body(name="web", regions=("local-1",), amount=1)
    launched = image_build_launch(customer=acme, user=owner, **body)
    team = team_create(customer=acme, name="web", members=[member], authorizers=[authorizer])
    request = application_request_create(
        requester=member, customer=acme, team="web", application="shop", authorizer="ada", provider="local"
    )
    return World(
        acme=acme,
        globex=Customer.objects.get(name="Globex"),
        project=project,
        item=asset.booking_item,
        asset=asset,
        domain=domain,
        build=launched.reservation.build,
        reservation=launched.reservation,
        pubkey=public_key_create(customer=acme, name="ops", body=ssh_public_key()),
        account=cloud_account_create(customer=acme, provider="local", name="lab"),
        team=team,
        request=request,
        order=order_create(text=ORDER.format(env="acme-shop"), customer=acme, user=owner),
        operation=request.operation,
    )


@pytest.fixture(autouse=True)
def plain_static(settings):
    """No collectstatic manifest in tests: plain static storage, so that admin pages render."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
