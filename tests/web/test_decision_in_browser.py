"""An application request decided in Chromium, against the running service (gunicorn, a real Celery
worker and beat, local buckets): Mia requests resources on the form, Ada approves on the decision
page, and both pages follow the request to its end without being reloaded."""

from __future__ import annotations

import re
import urllib.request

import pytest
from playwright.sync_api import expect

from provisioning.applications.models import ApplicationRequest
from tests.fixtures.web import PASSWORD, log_in_through_form

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_bucket_left_behind"),
]


def test_an_authorizer_approves_on_the_decision_page_and_the_request_completes(
    live_service, celery_worker, celery_beat, browser, page, team, requester, authorizer, screenshot
):
    for user in (requester[0], authorizer[0]):
        user.set_password(PASSWORD)
        user.save()

    # Mia asks for a bucket on the request form and lands on the request's status page.
    context = browser.new_context(base_url=live_service.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    mia = context.new_page()
    try:
        log_in_through_form(mia, "mia")
        mia.goto("/applications/requests/new/")
        mia.get_by_label("Application").fill("shop")
        mia.get_by_label("Team").select_option("web")
        mia.get_by_label("Provider").select_option("local")
        mia.get_by_label("Index page (HTML)").fill("<h1>The shop of team web</h1>")
        mia.get_by_label("Authorizer").select_option("ada")
        mia.get_by_label("Time limit for the decision (seconds)").fill("300")
        mia.get_by_role("button", name="Send the request").click()
        mia.wait_for_url("**/applications/requests/*/")
        expect(mia.locator("#request-status .waiting")).to_contain_text("Waiting for ada to decide until")
        expect(mia.locator("#request-status .headline")).to_have_text("Awaiting decision", timeout=30_000)
        mia.evaluate("window.sameDocument = true")
        request_id = mia.url.rstrip("/").rsplit("/", 1)[-1]

        # Ada finds it among what waits for her, sees the time left, and approves.
        log_in_through_form(page, "ada")
        page.goto("/applications/requests/")
        page.get_by_role("link", name="shop for web").click()
        page.wait_for_url(f"**/applications/requests/{request_id}/decision/")
        countdown = page.locator("#request-status .countdown")
        expect(countdown).to_have_text(re.compile(r"^[45]:\d\d left$"))  # of the 300 s
        page.get_by_label("Region").select_option("local-1")
        page.get_by_label("Profile").select_option("default")
        screenshot(page, "deciding")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"**/applications/requests/{request_id}/decision/")
        expect(page.locator("#request-status .decision")).to_contain_text("Approved by ada")
        expect(page.locator("#request-status .headline")).to_have_text("Ready", timeout=60_000)
        address = page.locator("#resources td.address a").inner_text()
        assert address.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(address, timeout=5) as answer:
            assert "The shop of team web" in answer.read().decode()

        # Mia's page followed by itself.
        expect(mia.locator("#request-status .headline")).to_have_text("Ready", timeout=10_000)
        expect(mia.locator("#resources td.address a")).to_have_text(address)
        assert mia.evaluate("window.sameDocument") is True
        screenshot(mia, "requester")
    finally:
        context.close()
    row = ApplicationRequest.objects.get(pk=request_id)
    assert (row.state, row.decision, row.region, row.profile) == ("ready", "approved", "local-1", "default")
