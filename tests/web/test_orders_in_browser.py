"""Environment orders in Chromium, against the running service (gunicorn, a real Celery worker running
ansible-runner, Debian's nginx): a platform team pastes an order with mistakes and sees each error on
its line, fixes it, sees the dry run's plan, confirms, follows the order live to its end, finds its
service on the environment page and reaches it through the proxy, then deletes the environment and
follows that too."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import expect

from provisioning.orders import proxy
from provisioning.orders.models import Environment
from tests.fixtures.orders import TEST_SETTINGS
from tests.fixtures.web import _wait_answering

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


def order_text(env: str, url: str, path: str = "/core") -> str:
    return f"""\
action: update
environment_id: "{env}"
api:
  domains: [api.{env}.example.com]
  services:
    - id: "6"
      path: {path}
      repository: {{url: '{url}', version: v1}}
      type: python
"""


@pytest.fixture
def orders_web(orders_worker, live_service):
    """The web process with the orders' test settings (file:// repositories, the test nginx): it may
    have been started by another test before they were set."""
    names = (*TEST_SETTINGS, "ORDERS_PROXY_LISTEN", "ORDERS_NGINX_PREFIX", "ORDERS_NGINX_BINARY")
    wanted = {name: orders_worker.env[name] for name in names}
    web = live_service.process
    if any(web.env.get(name) != value for name, value in wanted.items()):
        web.stop()
        web.env.update(wanted)
        web.start()
        _wait_answering(web, live_service.url + "/login/")
    return live_service


def test_a_team_orders_an_environment_follows_it_and_deletes_it(
    orders_web, page, web_user, log_in, service_repo, screenshot
):
    web_user("olivia", customer="Acme")
    repo = service_repo("api", "v1")
    env = f"env-{uuid.uuid4().hex[:6]}"
    log_in(page, "olivia")
    page.goto("/")
    page.get_by_role("link", name="Order an environment").click()
    page.wait_for_url("**/orders/new/")

    # Two mistakes: each is shown on its own line of the order.
    bad = order_text(env, repo.url + '{{lookup("pipe","id")}}', path="/../core")
    page.get_by_label("order.yml").fill(bad)
    page.get_by_role("button", name="Check the order").click()
    errors = page.locator("#order-errors")
    expect(errors).to_contain_text("2 fields to fix")
    path_error = errors.locator('[data-path="api.services[0].path"]')
    expect(path_error).to_contain_text("is not a clean URL path")
    expect(errors.locator('[data-line="7"].bad')).to_contain_text("path: /../core")
    expect(errors.locator('[data-path="api.services[0].repository.url"]')).to_contain_text("not templates")
    screenshot(page, "errors")
    assert not Environment.objects.exists()

    # Fixed: the plan of the dry run, then the confirmation.
    page.get_by_label("order.yml").fill(order_text(env, repo.url))
    page.get_by_role("button", name="Check the order").click()
    plan = page.locator("#plan")
    expect(plan).to_contain_text(f"create environment {env}")
    expect(plan).to_contain_text("deploy service 6 (api /core) at version v1")
    screenshot(page, "plan")
    page.get_by_role("button", name="Confirm and process the order").click()
    page.wait_for_url(re.compile(r".*/orders/\d+/$"))
    page.evaluate("window.sameDocument = true")

    # The status page follows the order to its end by itself.
    status = page.locator("#order-status")
    expect(status.locator(".headline")).to_have_text("Succeeded", timeout=180_000)
    expect(status.locator('[data-task="deploy"] .task-status')).to_have_text("done")
    expect(status.locator('[data-service="6"] .service-status')).to_contain_text("Deployed")
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"

    # The environment page: the service, where it runs, and its address through the proxy.
    page.get_by_role("link", name="The environment").click()
    page.wait_for_url(f"**/orders/environments/{env}/")
    row = page.locator('#services [data-service="6"]')
    expect(row.locator(".host")).to_have_text("local")
    expect(row.locator(".version")).to_have_text("v1")
    expect(row.locator(".service-status")).to_have_text("Deployed")
    address = f"http://api.{env}.example.com/core"
    expect(row.locator(".address")).to_have_text(address)
    port = int(row.locator(".port").inner_text())
    status_code, headers, body = proxy.request(f"api.{env}.example.com", "/core")
    assert status_code == 200 and json.loads(body)["name"] == "api" and headers["X-Orders-Service"] == "6"
    assert Environment.objects.get(key=env).deployments.get().port == port
    expect(page.locator("#domains")).to_contain_text(f"api.{env}.example.com")
    screenshot(page, "environment")

    # Delete: asked first, then followed.
    page.get_by_role("link", name="Delete this environment…").click()
    page.wait_for_url(f"**/orders/environments/{env}/delete/")
    expect(page.locator("main")).to_contain_text("This stops and removes 1 service")
    page.get_by_role("button", name=f"Yes, delete environment {env}").click()
    page.wait_for_url(re.compile(r".*/orders/\d+/$"))
    expect(page.locator("h1")).to_contain_text(f"delete environment {env}")
    expect(page.locator("#order-status .headline")).to_have_text("Succeeded", timeout=180_000)
    assert proxy.request(f"api.{env}.example.com", "/core")[0] == 404
    page.get_by_role("link", name="The environment").click()
    expect(page.locator("#environment-state")).to_contain_text("Deleted")
