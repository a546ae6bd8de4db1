"""A customer builds and launches through the wizard in Chromium, against the running service (gunicorn,
a real Celery worker and beat, the local provider), and watches the status page reach the end
without reloading it."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from images.models import Reservation
from tests.providers.conftest import ssh_public_key

pytestmark = pytest.mark.django_db(transaction=True)


def watch_until_final(page, timeout: float = 120.0) -> list[str]:
    """Every headline the status page shows until it says the launch is over, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Both read in one go: the page may swap its status in between two separate reads.
        headline, final = page.evaluate(
            """() => {
                const status = document.querySelector("#reservation-status");
                return [status.querySelector(".headline").innerText, status.hasAttribute("data-final")];
            }"""
        )
        if not seen or seen[-1] != headline:
            seen.append(headline)
        if final:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"the status page did not reach the end within {timeout}s: {seen}")


def test_a_customer_builds_and_launches_two_instances_and_watches_them_come_up(
    live_service, celery_worker, celery_beat, page, web_user, log_in
):
    web_user("olivia", customer="Acme")
    key = ssh_public_key()
    log_in(page, "olivia")
    page.goto("/images/build/")

    expect(page.get_by_role("heading", level=2)).to_have_text("Step 1 of 4: Image")
    page.get_by_label("Image name").fill("shop")
    page.get_by_label("Distribution").select_option("debian-12")
    page.get_by_label("Packages").fill("nginx curl")
    page.get_by_label("Services to enable").fill("nginx")
    page.get_by_label("User name").fill("ops")
    page.get_by_label("SSH public key").fill(key)
    page.get_by_label("Groups").fill("wheel")
    page.get_by_label("Path").fill("/etc/motd")
    page.get_by_label("Content").fill("Welcome to the shop.")
    page.get_by_role("button", name="Next: target").click()

    expect(page.get_by_role("heading", level=2)).to_have_text("Step 2 of 4: Target")
    expect(page.get_by_label("Local host")).to_be_checked()
    page.get_by_label("local-1").check()
    page.get_by_label("local-2").check()
    page.get_by_role("button", name="Next: launch").click()

    expect(page.get_by_role("heading", level=2)).to_have_text("Step 3 of 4: Launch")
    page.get_by_label("Instance type").select_option("small")
    page.get_by_label("Number of instances").fill("2")
    page.get_by_label("New public key").fill(key)
    page.get_by_role("button", name="Next: review").click()

    expect(page.get_by_role("heading", level=2)).to_have_text("Step 4 of 4: Review")
    expect(page.locator("dl.review")).to_contain_text("2 × small")
    page.get_by_role("button", name="Build and launch").click()

    page.wait_for_url(re.compile(r"/reservations/\d+/$"))
    page.evaluate("window.sameDocument = true")  # gone if the page were loaded again
    seen = watch_until_final(page)
    assert page.evaluate("window.sameDocument") is True
    assert seen[-1].startswith("Done"), seen
    assert any(h.startswith("Step ") for h in seen), seen  # it was watched step by step
    expect(page.locator("#reservation-status progress")).to_have_attribute("value", "6")

    reservation = Reservation.objects.get()
    assert reservation.success is True
    rows = page.locator("#instances tbody tr")
    expect(rows).to_have_count(2)
    shown = {}
    for i in range(2):
        cells = rows.nth(i).locator("td")
        address = cells.nth(3).inner_text()
        assert re.match(r"127\.0\.0\.1:\d+", address), address
        shown[cells.nth(0).inner_text()] = address.split()[0]
    assert set(shown) == set(reservation.instances.values_list("instance_id", flat=True))
    for instance_id, address in shown.items():  # each address answers as the instance it names
        with urllib.request.urlopen(f"http://{address}/health", timeout=5) as answer:
            health = json.loads(answer.read())
        assert health["instance_id"] == instance_id
    expect(page.get_by_role("link", name="The operation, step by step")).to_have_attribute(
        "href", f"/operations/{reservation.operation_id}/"
    )
