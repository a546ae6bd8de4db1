"""The bookings API without a worker: validation (400, nothing stored), visibility, the event row."""

import pytest
from django.db import connection

from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from provisioning.models import Operation
from tests.bookings.conftest import make_server, make_webspace

pytestmark = pytest.mark.django_db


def nothing_stored() -> bool:
    return not (
        BookingItem.objects.exists() or BookingItemCreatedEvent.objects.exists() or Operation.objects.exists()
    )


def post(client, **body):
    return client.post("/api/booking-items/", body, format="json")


def test_it_answers_401_without_credentials(client):
    assert client.get("/api/booking-items/").status_code == 401


def test_it_creates_and_lists_the_callers_projects_only(owner, outsider):
    assert owner[1].post("/api/projects/", {"caption": "Shop"}, format="json").status_code == 201
    assert owner[1].post("/api/projects/", {"caption": "Shop"}, format="json").status_code == 400
    outsider[1].post("/api/projects/", {"caption": "Other"}, format="json")
    captions = [p["caption"] for p in owner[1].get("/api/projects/").json()["results"]]
    assert captions == ["Shop"]


def test_it_books_without_hosting_asset_and_stores_no_event(owner, project):
    answer = post(
        owner[1],
        project=project.pk,
        type="PRIVATE_CLOUD",
        caption="Pool",
        resources={"CPU": 16, "RAM": 64, "SSD": 1000},
    )
    assert answer.status_code == 201, answer.json()
    assert answer.json()["hosting_asset_creation"] is None
    assert not BookingItemCreatedEvent.objects.exists() and not Operation.objects.exists()
    answer = post(
        owner[1],
        project=project.pk,
        type="PRIVATE_CLOUD",
        caption="Pool 2",
        resources={"CPU": 1, "RAM": 1, "SSD": 25},
        hosting_asset=None,
    )
    assert answer.status_code == 201 and not BookingItemCreatedEvent.objects.exists()


def test_it_answers_400_naming_each_bad_resource_and_stores_nothing(owner, project):
    answer = post(
        owner[1],
        project=project.pk,
        type="MANAGED_SERVER",
        caption="Big",
        resources={"CPU": 500, "RAM": 8, "Disk": 1},
        hosting_asset={"identifier": "vm1234"},
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["resources.CPU"] == ["must be at most 128."]
    assert body["resources.SSD"] == ["is required."]
    assert "is not a known property" in body["resources.Disk"][0]
    assert nothing_stored()


def test_it_answers_400_for_an_unknown_type(owner, project):
    answer = post(owner[1], project=project.pk, type="SPACESHIP", caption="x", resources={})
    assert answer.status_code == 400 and "type" in answer.json()
    assert nothing_stored()


def test_it_answers_400_for_a_wrong_parent(owner, project):
    cloud = BookingItem.objects.create(
        project=project, type="PRIVATE_CLOUD", caption="Pool", resources={"CPU": 8, "RAM": 8, "SSD": 100}
    )
    answer = post(
        owner[1],
        parent_item=cloud.pk,
        type="MANAGED_WEBSPACE",
        caption="web",
        resources={"SSD": 10},
        hosting_asset={"identifier": "abc00"},
    )
    assert answer.status_code == 400
    assert "only be booked under a MANAGED_SERVER" in answer.json()["parent_item"][0]
    assert BookingItem.objects.count() == 1 and not Operation.objects.exists()


def test_it_answers_400_when_the_parent_has_not_enough_left_and_stores_nothing(owner, project):
    cloud = BookingItem.objects.create(
        project=project, type="PRIVATE_CLOUD", caption="Pool", resources={"CPU": 8, "RAM": 16, "SSD": 200}
    )
    first = {"parent_item": cloud.pk, "type": "CLOUD_SERVER", "resources": {"CPU": 6, "RAM": 8, "SSD": 100}}
    assert post(owner[1], caption="one", **first).status_code == 201
    answer = post(owner[1], caption="two", **first)
    assert answer.status_code == 400
    assert answer.json() == {"resources.CPU": ["exceeds what the parent item has left (2 of 8)."]}
    assert BookingItem.objects.count() == 2


def test_it_answers_400_for_a_malformed_domain(owner, project):
    answer = post(
        owner[1],
        project=project.pk,
        type="DOMAIN_SETUP",
        caption="d",
        resources={"domainName": "exa mple..org"},
        hosting_asset={"webspace": "abc00"},
    )
    assert answer.status_code == 400 and "not a valid domain name" in answer.json()["resources.domainName"][0]
    assert nothing_stored()


@pytest.mark.parametrize("suffix", ["com", "co.uk"])
def test_it_answers_400_for_a_public_suffix(owner, project, suffix):
    answer = post(
        owner[1],
        project=project.pk,
        type="DOMAIN_SETUP",
        caption="d",
        resources={"domainName": suffix},
        hosting_asset={"webspace": "abc00"},
    )
    assert answer.status_code == 400
    assert (
        "public suffix" in answer.json()["resources.domainName"][0]
        or "fully qualified" in answer.json()["resources.domainName"][0]
    )
    assert nothing_stored()


def test_it_answers_400_for_bad_asset_data_and_stores_nothing(owner, project):
    answer = post(
        owner[1],
        project=project.pk,
        type="MANAGED_WEBSPACE",
        caption="web",
        resources={"SSD": 10},
        hosting_asset={"identifier": "Web-1", "colour": "red"},
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["hosting_asset.identifier"] == ["must be 3 characters and 2 digits (abc00)."]
    assert "hosting_asset.colour" in body
    assert nothing_stored()


def test_it_answers_400_for_another_customers_project(owner, outsider, project):
    answer = post(
        outsider[1],
        project=project.pk,
        type="PRIVATE_CLOUD",
        caption="x",
        resources={"CPU": 1, "RAM": 1, "SSD": 25},
    )
    assert answer.status_code == 400 and answer.json()["project"] == ["Unknown project."]


def test_it_answers_404_for_another_customers_item_and_its_assets(owner, outsider, project):
    webspace = make_webspace(project)
    item_id = webspace.booking_item_id
    assert owner[1].get(f"/api/booking-items/{item_id}/").status_code == 200
    assert outsider[1].get(f"/api/booking-items/{item_id}/").status_code == 404
    assert outsider[1].get(f"/api/hosting-assets/?booking_item={item_id}").json()["results"] == []
    assert outsider[1].get("/api/booking-items/").json()["results"] == []


def test_it_lists_the_assets_of_a_booking_item_with_their_sub_assets(owner, project):
    webspace = make_webspace(project)
    answer = owner[1].get(f"/api/hosting-assets/?booking_item={webspace.booking_item_id}")
    assert [(a["type"], a["identifier"], a["parent_asset"]) for a in answer.json()["results"]] == [
        ("MANAGED_WEBSPACE", "abc00", "vm1001"),
        ("UNIX_USER", "abc00", "abc00"),
    ]
    assert owner[1].get("/api/hosting-assets/?booking_item=x").status_code == 400


def test_it_stores_item_event_and_operation_together_and_shows_the_status(owner, project):
    server = make_server(project)
    answer = post(
        owner[1],
        parent_item=server.booking_item_id,
        type="MANAGED_WEBSPACE",
        caption="web",
        resources={"SSD": 10},
        hosting_asset={"identifier": "xyz01"},
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    event = BookingItemCreatedEvent.objects.get(booking_item_id=body["id"])
    assert event.asset_data == {"identifier": "xyz01"}
    creation = body["hosting_asset_creation"]
    assert creation["operation"] == str(event.operation_id)
    assert set(creation) >= {"status", "message", "instructions", "operation"}
    assert Project.objects.get(pk=body["project"]) == project


def test_it_refuses_a_json_null_as_asset_data_in_the_database(project):
    item = BookingItem.objects.create(project=project, type="PRIVATE_CLOUD", caption="Pool", resources={})
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bookings_bookingitemcreatedevent (booking_item_id, asset_data, status, status_message, "
                "instructions, waiting_for, created_at, updated_at) VALUES (%s, 'null', 'pending', '', '', '', now(), now())",
                [item.pk],
            )
    assert not HostingAsset.objects.exists()
