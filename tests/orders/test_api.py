"""POST /api/orders/ with a YAML body, GET /api/orders/{id}/: who sees what, and what is refused."""

from __future__ import annotations

import pytest

from provisioning.models import Operation
from provisioning.orders.models import Environment, Order, ServiceDeployment

pytestmark = pytest.mark.django_db

ORDER = """\
action: update
environment_id: shop-{n}
api:
  domains: [api.shop-{n}.example.com]
  services:
    - id: "1"
      path: /
      repository: {{url: 'https://git.example.com/shop/api', version: v1}}
      type: python
"""


def post(client, body, content_type="application/yaml"):
    return client.generic("POST", "/api/orders/", body, content_type=content_type)


def test_it_answers_201_and_queues_the_workflow(owner):
    answer = post(owner[1], ORDER.format(n=1))
    assert answer.status_code == 201, answer.content
    data = answer.json()
    assert data["status"] == "pending" and data["environment_id"] == "shop-1"
    assert data["changes"] == ["create environment shop-1", "deploy service 1 (api /) at version v1"]
    assert [t["status"] for t in data["tasks"]] == ["pending"] * 6
    assert Operation.objects.get(pk=data["operation"]).kind == "orders.update_environment"
    assert owner[1].get(f"/api/orders/{data['id']}/").json()["id"] == data["id"]


def test_it_answers_400_naming_every_bad_field_and_stores_nothing(owner):
    bad = ORDER.format(n=2).replace("path: /", "path: /../x").replace("https://git", "ext::git")
    bad = bad.replace("type: python", "type: python\n      secret: 1")
    answer = post(owner[1], bad)
    assert answer.status_code == 400
    assert set(answer.json()) == {
        "api.services[0].path",
        "api.services[0].repository.url",
        "api.services[0].secret",
    }
    assert not Order.objects.exists() and not Environment.objects.exists() and not Operation.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        "a: &a [1,1,1,1,1,1,1,1]\nb: [*a,*a,*a,*a,*a,*a,*a,*a]\n",
        "action: !!python/object/apply:os.system ['id']\n",
        "action: [unclosed\n",
        "",
    ],
    ids=["alias-bomb", "python-tag", "broken", "empty"],
)
def test_it_refuses_hostile_bodies_with_400(owner, body):
    answer = post(owner[1], body)
    assert answer.status_code == 400
    assert "order" in answer.json()
    assert not Order.objects.exists() and not Environment.objects.exists()


def test_it_refuses_a_body_larger_than_the_upload_limit_with_413(owner):
    answer = post(owner[1], "x" * (10 * 1024 * 1024))
    assert answer.status_code == 413 and "at most" in answer.json()["detail"]
    assert not Order.objects.exists() and not Environment.objects.exists()


def test_it_answers_409_while_an_order_of_the_environment_runs(owner):
    assert post(owner[1], ORDER.format(n=3)).status_code == 201
    answer = post(owner[1], ORDER.format(n=3).replace("v1", "v2"))
    assert answer.status_code == 409 and "still running" in answer.json()["detail"]


def test_it_refuses_a_domain_another_environment_serves(owner):
    assert post(owner[1], ORDER.format(n=4)).status_code == 201
    Environment.objects.filter(key="shop-4").update(domains={"api": ["api.shop-4.example.com"]})
    other = ORDER.format(n=5).replace("api.shop-5", "api.shop-4")
    answer = post(owner[1], other)
    assert answer.status_code == 400 and "shop-4" in answer.json()["api.domains[0]"][0]


def test_another_customers_order_answers_404_and_anonymous_401(owner, outsider, client):
    order_id = post(owner[1], ORDER.format(n=6)).json()["id"]
    assert outsider[1].get(f"/api/orders/{order_id}/").status_code == 404
    assert outsider[1].get("/api/orders/").json()["results"] == []
    assert client.get(f"/api/orders/{order_id}/").status_code == 401
    assert post(client, ORDER.format(n=7)).status_code == 401


def test_it_never_shows_vault_values(owner):
    from provisioning.orders import services

    order_id = post(owner[1], ORDER.format(n=8)).json()["id"]
    order = Order.objects.get(pk=order_id)
    services.environment_configure(order=order)
    deployment = ServiceDeployment.objects.get()
    assert services.vault_ensure(deployment=deployment) == 3
    assert services.vault_ensure(deployment=deployment) == 0  # existing ones are kept
    from provisioning.orders import vault

    values = [vault.decrypt(v.ciphertext) for v in deployment.vault.all()]
    text = owner[1].get(f"/api/orders/{order_id}/").content.decode()
    assert all(value not in text for value in values)
    assert "DATABASE_PASSWORD" not in text


def test_admin_pages_show_orders_environments_and_services_without_vault_values(
    owner, admin_client, settings
):
    from provisioning.orders import services, vault

    # No collectstatic in tests: plain static storage instead of the manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

    order_id = post(owner[1], ORDER.format(n=9)).json()["id"]
    services.environment_configure(order=Order.objects.get(pk=order_id))
    deployment = ServiceDeployment.objects.get()
    services.vault_ensure(deployment=deployment)
    values = [vault.decrypt(v.ciphertext) for v in deployment.vault.all()]
    pages = [
        "/admin/orders/order/",
        f"/admin/orders/order/{order_id}/change/",
        "/admin/orders/environment/",
        f"/admin/orders/environment/{deployment.environment_id}/change/",
        "/admin/orders/servicedeployment/?status__exact=pending",
        f"/admin/orders/servicedeployment/{deployment.pk}/change/",
    ]
    for page in pages:
        answer = admin_client.get(page)
        assert answer.status_code == 200, page
        assert all(value not in answer.content.decode() for value in values), page
    assert "DATABASE_PASSWORD" in admin_client.get(pages[-1]).content.decode()  # the name, not the value
