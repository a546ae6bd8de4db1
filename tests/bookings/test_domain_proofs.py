"""Domain proofs that cannot be borrowed: the TXT code is the service's, bound to the customer and the
domain, and a domain another customer set up (or a name below it) is not theirs to book. Real
PostgreSQL, Redis, a Celery worker and the loopback DNS server the worker queries."""

import pytest

from bookings.choices import HostingAssetType as A
from bookings.models import BookingItem, HostingAsset, Project
from bookings.validation.domains import txt_value
from bookings.verification import verification_code
from provisioning.models import Operation
from tests.bookings.conftest import event_of, make_server, make_webspace, wait_until
from tests.bookings.test_asset_creation import book_domain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("real_services")]


@pytest.fixture
def globex_project(outsider) -> Project:
    return Project.objects.create(customer=outsider[0].memberships.get().customer, caption="Rival")


def acme_code(project: Project, domain: str) -> str:
    return verification_code(customer_id=project.customer_id, domain=domain)


def prove_and_set_up(client, project, dns_records, domain: str) -> dict:
    """Acme books `domain`, publishes its record, and the assets come to be."""
    dns_records.add(domain, "TXT", txt_value(acme_code(project, domain)))
    body = book_domain(client, project, domain).json()
    wait_until(lambda: event_of(body["id"]) is None, what=f"{domain} set up")
    return body


def test_the_code_is_bound_to_the_customer_and_the_domain_and_a_chosen_one_is_refused(
    dns_records, owner, project, globex_project
):
    codes = {
        verification_code(customer_id=project.customer_id, domain="example.org"),
        verification_code(customer_id=globex_project.customer_id, domain="example.org"),
        verification_code(customer_id=project.customer_id, domain="shop.example.org"),
    }
    assert len(codes) == 3
    assert verification_code(customer_id=project.customer_id, domain="Example.ORG.") in codes

    answer = book_domain(owner[1], project, "example.org", verificationCode="MY-OWN-CODE-1234")
    assert answer.status_code == 400
    assert "chosen by the service" in answer.json()["resources.verificationCode"][0]
    assert not BookingItem.objects.exists()


def test_a_copied_txt_value_gets_another_customer_nothing_below_a_proven_domain(
    celery_worker, dns_records, owner, outsider, project, globex_project
):
    make_webspace(project)
    dns_records.add("example.org", "A", "192.0.2.10")  # it exists: its owner must prove it
    prove_and_set_up(owner[1], project, dns_records, "example.org")
    assert (
        HostingAsset.objects.get(type=A.DOMAIN_SETUP, identifier="example.org").customer_id
        == project.customer_id
    )
    published = txt_value(acme_code(project, "example.org"))  # public: anybody can read it

    # Globex books a name below it, with Acme's code, and then without any code.
    borrowed = book_domain(
        outsider[1], globex_project, "shop.example.org", verificationCode=published.split("=", 1)[1]
    )
    assert borrowed.status_code == 400, borrowed.json()
    plain = book_domain(outsider[1], globex_project, "shop.example.org")
    assert plain.status_code == 400, plain.json()
    message = plain.json()["resources.domainName"][0]
    assert "lies below example.org, which is set up for another customer" in message
    assert "example.org" in borrowed.json()["resources.domainName"][0]
    assert not BookingItem.objects.filter(project=globex_project).exists()
    assert not HostingAsset.objects.filter(customer_id=globex_project.customer_id).exists()
    assert not HostingAsset.objects.filter(identifier="shop.example.org").exists()


def test_a_booking_made_before_the_other_customer_proved_the_domain_ends_failed_saying_why(
    celery_worker, dns_records, owner, outsider, project, globex_project, settings
):
    settings.BOOKINGS_DNS_RECHECK = 60.0
    make_webspace(project)
    make_webspace(globex_project, identifier="xyz00", server=make_server(globex_project, "vm2002"))
    dns_records.add("example.org", "A", "192.0.2.10")
    dns_records.add("example.org", "TXT", txt_value(acme_code(project, "example.org")))
    # Globex books first, while Acme's record is already public on the super-domain: it proves nothing.
    rival = outsider[1].post(
        "/api/booking-items/",
        {
            "project": globex_project.pk,
            "type": "DOMAIN_SETUP",
            "caption": "shop",
            "resources": {"domainName": "shop.example.org"},
            "hosting_asset": {"webspace": "xyz00"},
        },
        format="json",
    )
    assert rival.status_code == 201, rival.json()
    creation = rival.json()["hosting_asset_creation"]
    assert creation["status"] == "waiting"
    globex_code = verification_code(customer_id=globex_project.customer_id, domain="shop.example.org")
    assert txt_value(globex_code) in creation["instructions"]

    prove_and_set_up(owner[1], project, dns_records, "example.org")  # Acme's proof is real
    signal = outsider[1].post(
        f"/api/operations/{creation['operation']}/signals/", {"name": "record_added"}, format="json"
    )
    assert signal.status_code == 202, signal.json()
    operation = wait_until(
        lambda: Operation.objects.filter(pk=creation["operation"], state="failed").first(), what="failed"
    )
    assert "lies below example.org, which is set up for another customer" in operation.error_message
    event = event_of(rival.json()["id"])
    assert event.status == "failed" and "another customer" in event.status_message
    assert not HostingAsset.objects.filter(identifier="shop.example.org").exists()
    assert not HostingAsset.objects.filter(
        customer_id=globex_project.customer_id, type__startswith="DOMAIN"
    ).exists()


def test_a_sub_domain_of_the_customers_own_proven_domain_needs_no_second_record(
    celery_worker, dns_records, owner, project
):
    make_webspace(project)
    dns_records.add("example.org", "A", "192.0.2.10")
    prove_and_set_up(owner[1], project, dns_records, "example.org")
    dns_records.remove("example.org", "TXT")  # the proof was made once; no record for the sub-domain
    body = book_domain(owner[1], project, "shop.example.org").json()
    wait_until(lambda: event_of(body["id"]) is None, what="the sub-domain set up")
    asset = HostingAsset.objects.get(type=A.DOMAIN_SETUP, identifier="shop.example.org")
    assert asset.customer_id == project.customer_id
