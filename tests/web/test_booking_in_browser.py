"""Booking in Chromium against the running service (gunicorn, a real Celery worker, celery beat and
a DNS server on loopback): the wizard, the live status page, and the hostmasters' admin."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from bookings.models import BookingItem
from bookings.services import booking_item_create
from bookings.validation.domains import txt_value
from tests.bookings.conftest import event_of, make_server, make_webspace, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def book_webspace_waiting_for_a_server(owner, project, identifier: str) -> BookingItem:
    """A webspace booked with no server: its saga waits for a hostmaster to assign one."""
    item = booking_item_create(
        user=owner,
        project=project,
        type="MANAGED_WEBSPACE",
        caption="Blog",
        resources={"SSD": 10},
        hosting_asset={"identifier": identifier},
    )
    wait_until(
        lambda: (e := event_of(item.pk)) is not None and e.status == "waiting",
        sweep=False,
        what="the webspace waiting for a hostmaster",
    )
    return item


def test_it_books_a_domain_shows_the_txt_record_and_then_the_assets_without_a_reload(
    live_service, celery_worker, celery_beat, dns_records, page, log_in, owner, project
):
    make_webspace(project, "abc00")
    dns_records.add("example.org", "A", "192.0.2.10")  # the domain exists: its owner must prove it
    log_in(page, "olivia")

    page.get_by_role("link", name="Book an item").click()
    page.get_by_label("What to book").select_option(label="Domain setup")
    page.get_by_label("Caption").fill("Shop domain")
    page.get_by_label("Project", exact=True).select_option(label="Shop")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("Step 2 of 4: Resources")
    page.get_by_label("Domain name").fill("shop.example.org")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Create the hosting asset now")).to_be_checked()
    page.get_by_label("Webspace serving the domain").select_option("abc00")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("row", name="Domain name")).to_be_hidden()  # the review names the keys
    expect(page.get_by_role("row", name="domainName")).to_contain_text("shop.example.org")
    page.get_by_role("button", name="Book").click()

    item = BookingItem.objects.get(caption="Shop domain")
    record = f'shop.example.org. IN TXT "{txt_value(item.resources["verificationCode"])}"'
    expect(page.get_by_label("TXT record")).to_have_value(record)
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    expect(page.locator("#creation-status")).to_contain_text("Waiting for: you")
    expect(page.locator(".progress-text")).to_have_text("step 2 of 4: Verify the domain's ownership")
    page.evaluate("window.stillTheSamePage = true")

    dns_records.add("shop.example.org", "TXT", txt_value(item.resources["verificationCode"]))
    page.get_by_role("button", name="Record added: check now").click()

    assets = page.locator("table.assets")
    expect(assets).to_contain_text("Domain HTTP setup", timeout=30_000)
    expect(assets).to_contain_text("shop.example.org")
    expect(page.locator(".progress-text")).to_have_text("step 4 of 4: the hosting assets exist")
    expect(page.get_by_label("TXT record")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True  # updated in place, never reloaded
    assert event_of(item.pk) is None


def test_it_lets_a_hostmaster_assign_the_target_server_from_the_admin_and_the_webspace_completes(
    live_service, celery_worker, celery_beat, page, log_in, owner, hostmaster, project
):
    make_server(project, "vm1001")
    item = book_webspace_waiting_for_a_server(owner, project, "xyz01")
    log_in(page, "hilda")
    page.goto("/admin/")
    queue = page.locator("#hostmaster-queue")
    expect(queue).to_contain_text("Managed webspace: Blog")
    expect(queue).to_contain_text("waiting for a hostmaster to assign a target server")

    page.get_by_role("link", name="All events waiting for a hostmaster").click()
    page.get_by_role("row", name="Managed webspace: Blog").get_by_role("checkbox").check()
    page.locator("select[name=action]").select_option("assign_target_server")
    page.get_by_label("Server / identifier").fill("vm1001")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Assigned vm1001: 1 event(s).")

    page.goto(f"/bookings/items/{item.pk}/")
    assets = page.locator("table.assets")
    expect(assets).to_contain_text("Managed webspace", timeout=30_000)
    expect(assets).to_contain_text("xyz01")
    expect(assets).to_contain_text("vm1001")
    expect(page.locator(".progress-text")).to_have_text("step 4 of 4: the hosting assets exist")
    assert event_of(item.pk) is None


def test_it_shows_the_customer_the_timeline_and_what_the_operation_waits_for(
    live_service, celery_worker, page, log_in, owner, project
):
    book_webspace_waiting_for_a_server(owner, project, "xyz02")
    log_in(page, "olivia")
    expect(page.locator("#booking-items")).to_contain_text("Waiting, waiting for a hostmaster")
    page.get_by_role("link", name="Managed webspace: Blog").click()
    expect(page.locator("#creation-status")).to_contain_text("Waiting for: a hostmaster")
    page.get_by_role("link", name="Timeline of the operation").click()
    expect(page.locator(".progress-text")).to_have_text("step 2 of 4: Find the target server")
    expect(page.get_by_text("The signal server_assigned")).to_be_visible()
    bars = page.locator("svg.timeline rect.bar")
    expect(bars).to_have_count(2)  # validate done, target_server waiting
    expect(bars.last.locator("title")).to_contain_text("target_server attempt 1: Wait for a signal")
