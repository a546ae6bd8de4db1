"""The order wizard, the order page and the environment page, through Django's test client (the
browser walk is tests/web/test_orders_in_browser.py)."""

from __future__ import annotations

import re

import pytest

from provisioning.orders.models import Environment, Order

pytestmark = pytest.mark.django_db

GOOD = """\
action: update
environment_id: shop
api:
  domains: [api.shop.example.com]
  services:
    - id: "1"
      path: /
      repository: {url: 'https://git.example.com/shop/api', version: v1}
      type: python
"""
BAD = """\
action: update
environment_id: shop
api:
  domains: [api.shop.example.com]
  services:
    - id: "1"
      path: /../x
      repository:
        url: 'https://git.example.com/{{lookup("pipe","id")}}'
      type: cobol
"""


@pytest.fixture(autouse=True)
def plain_static(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def olivia(client, owner):
    client.force_login(owner[0])
    return client


def test_the_wizard_shows_every_field_error_on_its_line_and_stores_nothing(olivia):
    answer = olivia.post("/orders/new/", {"text": BAD, "check": "1"})
    assert answer.status_code == 400
    page = answer.content.decode()
    placed = dict(
        re.findall(
            r'data-line="(\d+)">(?:(?!data-line).)*?</div><div class="field-error" data-path="([^"]+)"', page
        )
    )
    assert placed == {
        "7": "api.services[0].path",
        "9": "api.services[0].repository.url",
        "10": "api.services[0].type",
    }
    assert "3 fields to fix" in page and "order values are data" in page
    assert not Order.objects.exists() and not Environment.objects.exists()


def test_the_wizard_shows_the_plan_then_the_confirmed_order_and_its_environment(olivia):
    answer = olivia.post("/orders/new/", {"text": GOOD, "check": "1"})
    assert answer.status_code == 200
    page = answer.content.decode()
    assert "create environment shop" in page and "deploy service 1 (api /) at version v1" in page
    assert not Order.objects.exists()
    token = re.search(r'name="token" value="([^"]+)"', page)[1]

    answer = olivia.post("/orders/new/", {"text": GOOD, "confirm": "1", "token": token})
    order = Order.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/orders/{order.pk}/"
    # The same confirmation again (a double click, a reload) is the same order.
    again = olivia.post("/orders/new/", {"text": GOOD, "confirm": "1", "token": token})
    assert again["Location"] == f"/orders/{order.pk}/" and Order.objects.count() == 1
    page = olivia.get(f"/orders/{order.pk}/").content.decode()
    assert "Allocate resources" in page and 'data-live-url="/orders/' in page
    page = olivia.get("/orders/environments/shop/").content.decode()
    assert f"/orders/{order.pk}/" in page and "Delete this environment" in page


def test_the_wizard_takes_an_uploaded_file(olivia, tmp_path):
    path = tmp_path / "order.yml"
    path.write_text(GOOD)
    with path.open("rb") as upload:
        answer = olivia.post("/orders/new/", {"file": upload, "check": "1"})
    assert answer.status_code == 200 and "create environment shop" in answer.content.decode()


def test_another_customers_order_and_environment_answer_404(olivia, client, outsider):
    olivia.post("/orders/new/", {"text": GOOD, "confirm": "1", "token": "t"})
    order = Order.objects.get()
    client.force_login(outsider[0])
    for path in (f"/orders/{order.pk}/", f"/orders/{order.pk}/live/", "/orders/environments/shop/"):
        assert client.get(path).status_code == 404, path
    assert client.post("/orders/environments/shop/delete/").status_code == 404
    assert Order.objects.count() == 1
