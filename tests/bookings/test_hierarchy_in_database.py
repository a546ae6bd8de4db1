"""The database itself refuses an asset that breaks the hierarchy, even when inserted directly."""

import pytest
from django.db import IntegrityError, connection, transaction

from bookings.models import HostingAsset
from tests.bookings.conftest import make_webspace

pytestmark = pytest.mark.django_db


def insert(type_: str, identifier: str, parent_id=None, assigned_id=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bookings_hostingasset (type, identifier, caption, config, parent_asset_id, "
            "assigned_to_asset_id, created_at) VALUES (%s, %s, '', '{}', %s, %s, now())",
            [type_, identifier, parent_id, assigned_id],
        )


def refused(fn) -> str:
    with pytest.raises(IntegrityError) as info, transaction.atomic():
        fn()
    return str(info.value)


def test_it_refuses_a_webspace_under_a_unix_user_inserted_by_sql(project):
    webspace = make_webspace(project)
    unix_user = HostingAsset.objects.get(type="UNIX_USER", identifier="abc00")
    assert "wrong type" in refused(lambda: insert("MANAGED_WEBSPACE", "bad00", parent_id=unix_user.pk))
    assert "wrong type" in refused(lambda: insert("UNIX_USER", "orphan"))
    assert "wrong type" in refused(lambda: insert("MANAGED_SERVER", "vm9999", parent_id=webspace.pk))
    insert("EMAIL_ALIAS", "abc00-info", parent_id=webspace.pk)  # a valid one passes
    assert HostingAsset.objects.filter(identifier="abc00-info").exists()


def test_it_refuses_a_wrong_assigned_to_asset_through_the_orm(project):
    webspace = make_webspace(project)
    setup = HostingAsset.objects.create(type="DOMAIN_SETUP", identifier="example.org")
    assert "wrong type" in refused(
        lambda: HostingAsset.objects.create(
            type="DOMAIN_HTTP_SETUP", identifier="example.org", parent_asset=setup, assigned_to_asset=webspace
        )
    )
    assert "wrong type" in refused(
        lambda: HostingAsset.objects.create(
            type="DOMAIN_DNS_SETUP", identifier="example.org", parent_asset=setup
        )
    )


def test_it_refuses_changing_a_type_that_would_orphan_children(project):
    webspace = make_webspace(project)
    assert "cannot change" in refused(
        lambda: HostingAsset.objects.filter(pk=webspace.pk).update(type="CLOUD_SERVER")
    )
    server = webspace.parent_asset
    refused(lambda: HostingAsset.objects.filter(pk=webspace.pk).update(parent_asset=webspace))
    assert HostingAsset.objects.get(pk=webspace.pk).parent_asset_id == server.pk


def test_it_refuses_an_unknown_type_and_a_duplicate_identifier(project):
    make_webspace(project)
    assert refused(lambda: insert("TOASTER", "t1"))
    webspace_id = HostingAsset.objects.get(type="MANAGED_WEBSPACE").pk
    assert "unique" in refused(lambda: insert("UNIX_USER", "abc00", parent_id=webspace_id))
    with pytest.raises(IntegrityError), transaction.atomic():
        HostingAsset.objects.create(type="MANAGED_SERVER", identifier="vm1001")
