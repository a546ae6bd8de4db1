"""Build and launch through the API without a worker: validation, the limit, visibility, secrets."""

import pytest

from images.models import CloudAccount, ImageBuild, Reservation
from provisioning.models import Operation
from tests.images.conftest import launch_body, manifest
from tests.providers.conftest import ssh_public_key

pytestmark = pytest.mark.django_db


def test_it_answers_201_with_the_build_the_reservation_and_the_operation(owner):
    answer = owner[1].post("/api/image-builds/", launch_body(), format="json")
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["build"]["status"] == "pending"
    assert body["build"]["regions"] == ["local-1", "local-2"]
    reservation = body["reservation"]
    assert reservation["status"] == "step 1 of 6: Building the image"
    assert reservation["step_titles"] == [
        "Building the image",
        "Waiting for the image to be ready",
        "Ensuring the public key",
        "Reserving the launch",
        "Launching instances",
        "Fetching instance descriptions",
    ]
    assert (reservation["step"], reservation["steps"], reservation["success"]) == (1, 6, None)
    assert reservation["instances_per_region"] == {"local-1": 2, "local-2": 1}
    assert body["operation"]["kind"] == "images.build_launch.2"
    assert body["operation"]["id"] == reservation["operation"]
    assert owner[1].get(f"/api/reservations/{reservation['id']}/").json()["status"] == reservation["status"]
    assert owner[1].get(f"/api/image-builds/{body['build']['id']}/").json()["reservations"] == [
        reservation["id"]
    ]
    assert owner[1].get("/api/reservations/").json()["count"] == 1


def test_a_bad_manifest_answers_400_naming_every_bad_field_and_starts_nothing(owner):
    bad = manifest(
        regions=("local-1", "mars-1"),
        distribution="windows-95",
        packages=["ok", "bad name!"],
        customizations={
            "users": [{"name": "root", "ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nx"}],
            "files": [{"path": "etc/motd", "mode": "999"}],
            "services": {"enabled": ["sshd"], "disabled": ["sshd"]},
            "kernel": {},
        },
    )
    answer = owner[1].post(
        "/api/image-builds/",
        {"name": "web", "manifest": bad, "launch": {"amount": 0, "instance_type": "huge"}},
        format="json",
    )
    assert answer.status_code == 400
    errors = answer.json()
    assert set(errors) == {
        "manifest.distribution",
        "manifest.packages[1]",
        "manifest.customizations.kernel",
        "manifest.customizations.users[0].name",
        "manifest.customizations.users[0].ssh_key",
        "manifest.customizations.files[0].path",
        "manifest.customizations.files[0].mode",
        "manifest.customizations.services",
        "manifest.target.regions[1]",
        "launch.amount",
        "launch.instance_type",
    }, errors
    assert "private key" in errors["manifest.customizations.users[0].ssh_key"][0]
    assert "mars-1" in errors["manifest.target.regions[1]"][0]
    assert (ImageBuild.objects.count(), Reservation.objects.count(), Operation.objects.count()) == (0, 0, 0)


def test_a_missing_manifest_or_target_answers_400(owner):
    answer = owner[1].post("/api/image-builds/", {"name": "web", "manifest": {}, "launch": {}}, format="json")
    assert answer.status_code == 400
    assert {"manifest.distribution", "manifest.target"} <= set(answer.json())


def test_more_pending_reservations_than_the_limit_answer_429(owner, settings):
    settings.IMAGES_PENDING_RESERVATIONS_LIMIT = 2
    for _ in range(2):
        assert owner[1].post("/api/image-builds/", launch_body(), format="json").status_code == 201
    answer = owner[1].post("/api/image-builds/", launch_body(), format="json")
    assert answer.status_code == 429
    assert "at most 2" in answer.json()["detail"]
    assert Reservation.objects.count() == 2
    # The limit is per provider: an aws launch is still allowed.
    account = (
        owner[1]
        .post(
            "/api/cloud-accounts/",
            {"provider": "aws", "name": "prod", "access_key_id": "AKIA1", "secret_access_key": "s3cr3t"},
            format="json",
        )
        .json()
    )
    aws = launch_body(provider="aws", regions=("us-east-1",), account=account["id"], instance_type="t3.micro")
    assert owner[1].post("/api/image-builds/", aws, format="json").status_code == 201


def test_another_customers_reservation_answers_404(owner, outsider):
    reservation = owner[1].post("/api/image-builds/", launch_body(), format="json").json()["reservation"]
    assert outsider[1].get(f"/api/reservations/{reservation['id']}/").status_code == 404
    assert outsider[1].get("/api/reservations/").json()["count"] == 0
    assert outsider[1].get(f"/api/image-builds/{reservation['build']}/").status_code == 404


def test_no_credentials_answer_401():
    from rest_framework.test import APIClient

    assert APIClient().get("/api/reservations/").status_code == 401


def test_cloud_account_credentials_are_write_only_and_stored_encrypted(owner):
    answer = owner[1].post(
        "/api/cloud-accounts/",
        {
            "provider": "aws",
            "name": "prod",
            "account_id": "123456789012",
            "access_key_id": "AKIAEXAMPLE",
            "secret_access_key": "very-secret-value",
        },
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    assert "very-secret-value" not in answer.content.decode()
    assert "AKIAEXAMPLE" not in answer.content.decode()
    assert answer.json()["has_credentials"] is True
    listed = owner[1].get("/api/cloud-accounts/?provider=aws")
    assert "very-secret-value" not in listed.content.decode()
    account = CloudAccount.objects.get()
    assert "very-secret-value" not in account.credentials_encrypted
    assert account.provider_account()["secret_access_key"] == "very-secret-value"
    assert "very-secret" not in repr(account)
    assert owner[1].get("/api/cloud-accounts/?provider=local").json()["count"] == 0


def test_an_aws_launch_must_name_one_of_the_customers_accounts(owner, outsider):
    foreign = (
        outsider[1]
        .post(
            "/api/cloud-accounts/",
            {"provider": "aws", "name": "theirs", "access_key_id": "A", "secret_access_key": "B"},
            format="json",
        )
        .json()
    )
    body = launch_body(provider="aws", regions=("us-east-1",), instance_type="t3.micro")
    assert "launch.account" in owner[1].post("/api/image-builds/", body, format="json").json()
    body["launch"]["account"] = foreign["id"]
    answer = owner[1].post("/api/image-builds/", body, format="json")
    assert answer.json()["launch.account"] == ["is not one of your cloud accounts."]


def test_public_keys_are_stored_once_per_fingerprint_and_private_keys_refused(owner):
    key = ssh_public_key("rsa")
    first = owner[1].post("/api/pubkeys/", {"name": "laptop", "body": key}, format="json")
    again = owner[1].post("/api/pubkeys/", {"name": "other", "body": key}, format="json")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["fingerprint"].startswith("SHA256:")
    private = owner[1].post(
        "/api/pubkeys/", {"name": "oops", "body": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}, format="json"
    )
    assert private.status_code == 400
    assert "private key" in private.json()["body"][0]


def test_fault_injection_is_refused_unless_the_service_allows_it(owner, settings):
    settings.IMAGES_FAULT_INJECTION = False
    answer = owner[1].post(
        "/api/image-builds/", launch_body(inject_fault="describe_instances"), format="json"
    )
    assert answer.status_code == 400
    assert "launch.inject_fault" in answer.json()


def test_the_admin_pages_of_builds_reservations_and_accounts_show_no_credentials(owner, client, settings):
    from provisioning.services import api_user_create_or_update

    settings.STORAGES = {  # no collectstatic manifest in tests
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    hostmaster, _ = api_user_create_or_update(username="hilda", customer_name="Hosting", hostmaster=True)
    body = owner[1].post("/api/image-builds/", launch_body(), format="json").json()
    owner[1].post(
        "/api/cloud-accounts/",
        {
            "provider": "aws",
            "name": "prod",
            "access_key_id": "AKIAADMIN",
            "secret_access_key": "admin-secret",
        },
        format="json",
    )
    client.force_login(hostmaster)
    reservation = client.get(f"/admin/images/reservation/{body['reservation']['id']}/change/")
    assert reservation.status_code == 200
    assert b"step 1 of 6: Building the image" in reservation.content
    for page in ("imagebuild", "reservation", "publickey", "cloudaccount"):
        answer = client.get(f"/admin/images/{page}/?q=web")
        assert answer.status_code == 200, page
    account = CloudAccount.objects.get()
    change = client.get(f"/admin/images/cloudaccount/{account.pk}/change/")
    assert change.status_code == 200
    assert b"admin-secret" not in change.content and b"AKIAADMIN" not in change.content


@pytest.mark.parametrize("body", ["aâ AAAA", "ssh-dss AAAAB3NzaC1kc3M=", "ecdsa-sha2-nistp999 AAAA"])
def test_a_key_of_an_unknown_type_answers_400(owner, body):
    answer = owner[1].post("/api/pubkeys/", {"name": "odd", "body": body}, format="json")
    assert answer.status_code == 400, answer.content
    assert "body" in answer.json()
