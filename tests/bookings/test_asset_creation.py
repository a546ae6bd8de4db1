"""The asset-creation sagas end to end: PostgreSQL, Redis, a real Celery worker and a real DNS server
on loopback that the worker queries over the network."""

import pytest

from bookings.choices import HostingAssetType as A
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset
from bookings.services import event_assign_target_server, event_mark_setup_done
from bookings.validation.domains import txt_value
from provisioning.models import Operation
from tests.bookings.conftest import event_of, make_server, make_webspace, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("real_services")]


def book_domain(client, project, domain: str, **resources):
    return client.post(
        "/api/booking-items/",
        {
            "project": project.pk,
            "type": "DOMAIN_SETUP",
            "caption": domain,
            "resources": {"domainName": domain, **resources},
            "hosting_asset": {"webspace": "abc00", "dns": {"TTL": 3600}},
        },
        format="json",
    )


def domain_assets(domain: str) -> list[tuple[str, str | None]]:
    return sorted(
        HostingAsset.objects.filter(identifier=domain).values_list("type", "assigned_to_asset__identifier")
    )


def test_it_answers_201_waiting_with_the_record_to_add_then_creates_the_domain_once_dns_serves_it(
    celery_worker, dns_records, owner, project, settings
):
    settings.BOOKINGS_DNS_RECHECK = 60.0  # the signal, not the backoff, must move it on here
    make_webspace(project)
    dns_records.add("example.org", "A", "192.0.2.10")  # the registrable domain exists: proof needed
    answer = book_domain(owner[1], project, "shop.example.org")
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    code = BookingItem.objects.get(pk=body["id"]).resources["verificationCode"]
    creation = body["hosting_asset_creation"]
    assert creation["status"] == "waiting"
    assert creation["waiting_for"] == "customer"
    assert f'shop.example.org. IN TXT "domain-setup-verification-code={code}"' in creation["instructions"]
    assert "record_added" in creation["instructions"]
    assert domain_assets("shop.example.org") == []

    dns_records.add("example.org", "TXT", txt_value(code))  # on a super-domain
    signal = owner[1].post(
        f"/api/operations/{creation['operation']}/signals/", {"name": "record_added"}, format="json"
    )
    assert signal.status_code == 202, signal.json()
    wait_until(lambda: event_of(body["id"]) is None, what="the event deleted", sweep=False, timeout=30)

    assert owner[1].get(f"/api/booking-items/{body['id']}/").json()["hosting_asset_creation"] is None
    assert domain_assets("shop.example.org") == [
        ("DOMAIN_DNS_SETUP", "abc00"),
        ("DOMAIN_HTTP_SETUP", "abc00"),
        ("DOMAIN_MBOX_SETUP", "abc00"),
        ("DOMAIN_SETUP", None),
        ("DOMAIN_SMTP_SETUP", "abc00"),
    ]
    assert HostingAsset.objects.get(type=A.DOMAIN_DNS_SETUP).config["TTL"] == 3600
    assert HostingAsset.objects.get(type=A.DOMAIN_HTTP_SETUP).assigned_to_asset.type == A.UNIX_USER
    listed = owner[1].get(f"/api/hosting-assets/?booking_item={body['id']}").json()["results"]
    assert len(listed) == 5
    assert Operation.objects.get(pk=creation["operation"]).state == "succeeded"


def test_it_re_checks_the_record_with_backoff_without_a_signal(
    celery_worker, dns_records, owner, project, settings
):
    settings.BOOKINGS_DNS_RECHECK = 1.0
    make_webspace(project)
    dns_records.add("example.net", "NS", "ns.example.net.")
    body = book_domain(owner[1], project, "example.net").json()
    code = BookingItem.objects.get(pk=body["id"]).resources["verificationCode"]
    assert body["hosting_asset_creation"]["status"] == "waiting"
    assert txt_value(code) in body["hosting_asset_creation"]["instructions"]
    op_id = body["hosting_asset_creation"]["operation"]
    wait_until(
        lambda: Operation.objects.get(pk=op_id).step_runs.filter(step="verify_ownership").count() >= 3,
        what="three DNS checks",
    )
    op = Operation.objects.get(pk=body["hosting_asset_creation"]["operation"])
    checks = [r for r in op.step_runs.filter(step="verify_ownership").order_by("started_at")]
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in zip(checks, checks[1:], strict=False)]
    assert gaps[1] > gaps[0] * 1.5, gaps  # the waits grow
    dns_records.add("example.net", "TXT", txt_value(code))
    wait_until(lambda: event_of(body["id"]) is None, what="the event deleted", timeout=40)
    assert HostingAsset.objects.filter(type=A.DOMAIN_SETUP, identifier="example.net").exists()


def test_it_needs_no_proof_for_a_registrable_domain_that_does_not_exist_yet(
    celery_worker, dns_records, owner, project
):
    make_webspace(project)
    body = book_domain(owner[1], project, "brand-new-registration.de").json()
    wait_until(lambda: event_of(body["id"]) is None, what="the event deleted")
    assert len(domain_assets("brand-new-registration.de")) == 5


def test_a_hostmaster_assignment_completes_a_waiting_webspace(
    celery_worker, owner, outsider, hostmaster, project
):
    server = make_server(project, "vm2001")
    answer = owner[1].post(
        "/api/booking-items/",
        {
            "project": project.pk,
            "type": "MANAGED_WEBSPACE",
            "caption": "blog",
            "resources": {"SSD": 5},
            "hosting_asset": {"identifier": "blg00"},
        },
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    creation = answer.json()["hosting_asset_creation"]
    assert (creation["status"], creation["waiting_for"]) == ("waiting", "hostmaster")
    assert "Assign target server" in creation["instructions"]
    item_id = answer.json()["id"]

    # The customer may not pick a server for itself: the saga ignores a signal from a non-hostmaster.
    owner[1].post(
        f"/api/operations/{creation['operation']}/signals/",
        {"name": "server_assigned", "payload": {"server": "vm2001"}},
        format="json",
    )
    wait_until(
        lambda: "not a hostmaster" in (event_of(item_id).status_message or ""), what="the signal ignored"
    )
    assert (
        event_of(item_id).status == "waiting" and not HostingAsset.objects.filter(identifier="blg00").exists()
    )

    event_assign_target_server(
        event=event_of(item_id), server_identifier=server.identifier, user=hostmaster[0]
    )
    wait_until(lambda: event_of(item_id) is None, what="the event deleted")
    webspace = HostingAsset.objects.get(type=A.MANAGED_WEBSPACE, identifier="blg00")
    assert webspace.parent_asset == server and webspace.booking_item_id == item_id
    assert HostingAsset.objects.get(type=A.UNIX_USER, identifier="blg00").parent_asset == webspace


def test_a_webspace_under_a_set_up_server_is_created_at_once(celery_worker, owner, project):
    server = make_server(project, "vm2002")
    answer = owner[1].post(
        "/api/booking-items/",
        {
            "parent_item": server.booking_item_id,
            "type": "MANAGED_WEBSPACE",
            "caption": "shop",
            "resources": {"SSD": 5},
            "hosting_asset": {"identifier": "shp00"},
        },
        format="json",
    )
    assert answer.status_code == 201
    wait_until(lambda: event_of(answer.json()["id"]) is None, what="the event deleted", sweep=False)
    assert HostingAsset.objects.get(identifier="shp00", type=A.MANAGED_WEBSPACE).parent_asset == server


def test_a_managed_server_waits_for_manual_setup_then_gets_its_asset(
    celery_worker, owner, hostmaster, project
):
    answer = owner[1].post(
        "/api/booking-items/",
        {
            "project": project.pk,
            "type": "MANAGED_SERVER",
            "caption": "db",
            "resources": {"CPU": 2, "RAM": 4, "SSD": 50},
            "hosting_asset": {"caption": "database server"},
        },
        format="json",
    )
    creation = answer.json()["hosting_asset_creation"]
    assert (creation["status"], creation["waiting_for"]) == ("waiting", "hostmaster")
    event = event_of(answer.json()["id"])
    with pytest.raises(Exception, match="Only a hostmaster"):
        event_mark_setup_done(event=event, identifier="vm3001", user=owner[0])
    event_mark_setup_done(event=event, identifier="vm3001", user=hostmaster[0])
    wait_until(lambda: event_of(answer.json()["id"]) is None, what="the event deleted")
    asset = HostingAsset.objects.get(type=A.MANAGED_SERVER, identifier="vm3001")
    assert asset.booking_item_id == answer.json()["id"] and asset.caption == "database server"


def test_an_asset_error_never_rolls_the_booking_back(celery_worker, owner, hostmaster, project):
    make_webspace(project, "tkn00")
    server = HostingAsset.objects.get(type=A.MANAGED_SERVER)
    answer = owner[1].post(
        "/api/booking-items/",
        {
            "parent_item": server.booking_item_id,
            "type": "MANAGED_WEBSPACE",
            "caption": "dup",
            "resources": {"SSD": 5},
            "hosting_asset": {"identifier": "tkn00"},
        },
        format="json",
    )
    assert answer.status_code == 201
    item_id = answer.json()["id"]
    event = wait_until(
        lambda: (e := event_of(item_id)) and e.status == "failed" and e, what="the event failed"
    )
    assert "exists already" in event.status_message and event.waiting_for == "hostmaster"
    assert BookingItem.objects.filter(pk=item_id).exists()
    assert HostingAsset.objects.filter(identifier="tkn00").count() == 2  # the first webspace and its user
    body = owner[1].get(f"/api/booking-items/{item_id}/").json()
    assert body["hosting_asset_creation"]["status"] == "failed"
    assert BookingItemCreatedEvent.objects.filter(booking_item_id=item_id).count() == 1
