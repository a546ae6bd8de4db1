"""Every environment has an owner: `process_order` names the customer, only that customer orders the
environment again, and environments from before owners are given to a customer by the migration."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from provisioning.orders.models import Environment, Order

pytestmark = pytest.mark.django_db

ORDER = """\
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


def process(tmp_path, *args: str) -> str:
    path = tmp_path / "order.yml"
    path.write_text(ORDER)
    out = io.StringIO()
    call_command("process_order", str(path), *args, stdout=out)
    return out.getvalue()


def test_process_order_needs_the_customer_it_orders_for(tmp_path, owner):
    with pytest.raises(CommandError, match="--customer"):
        process(tmp_path, "--dry-run")
    with pytest.raises(CommandError, match="There is no customer 'Acne'"):
        process(tmp_path, "--customer", "Acne", "--dry-run")
    assert "create environment shop" in process(tmp_path, "--customer", "Acme", "--dry-run")
    assert not Environment.objects.exists()


def test_an_environment_made_by_process_order_belongs_to_its_customer_only(tmp_path, owner, outsider):
    with pytest.raises(CommandError, match="did not end"):  # stored and queued; no worker here
        process(tmp_path, "--customer", "Acme", "--timeout", "0")
    environment = Environment.objects.get(key="shop")
    assert environment.customer.name == "Acme" and Order.objects.get().customer.name == "Acme"

    for body in (ORDER.replace("v1", "v2"), "action: delete\nenvironment_id: shop\n"):
        answer = outsider[1].generic("POST", "/api/orders/", body, content_type="application/yaml")
        assert answer.status_code == 400, answer.content
        assert answer.json() == {"environment_id": ["belongs to another customer."]}
    assert Order.objects.count() == 1
    answer = owner[1].generic(
        "POST", "/api/orders/", ORDER.replace("v1", "v2"), content_type="application/yaml"
    )
    assert answer.status_code == 409  # its own: told that the first order still runs


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_ownerless_environments_and_their_orders_an_owner():
    executor = MigrationExecutor(connection)
    before, after = [("orders", "0001_initial")], [("orders", "0002_every_environment_has_an_owner")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Customer = old.get_model("provisioning", "Customer")
    acme = Customer.objects.create(name="Acme")
    OldEnvironment, OldOrder = old.get_model("orders", "Environment"), old.get_model("orders", "Order")
    orphan = OldEnvironment.objects.create(key="orphan")
    owned = OldEnvironment.objects.create(key="owned", customer=acme)
    OldOrder.objects.create(environment=orphan, action="update", spec={})
    OldOrder.objects.create(environment=owned, action="update", spec={})

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    holder_id = Environment.objects.get(key="orphan").customer_id
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())  # the schema the other tests expect
    holder = "Unowned environments (from before owners)"
    assert Environment.objects.get(key="orphan").customer.name == holder
    assert holder_id == Environment.objects.get(key="orphan").customer_id
    assert Environment.objects.get(key="owned").customer.name == "Acme"
    assert {o.environment.key: o.customer.name for o in Order.objects.all()} == {
        "orphan": holder,
        "owned": "Acme",
    }
