"""Cloud accounts never use the worker machine's credentials for a customer, end to end: the API, the
admin and a real worker process whose environment holds working credentials for the moto account
123456789012 (and the profile `operator`, tests/fixtures/aws.py)."""

import boto3
import pytest
from django.conf import settings

from images.models import CloudAccount, Reservation
from provisioning.providers.base import TAG_RESERVATION
from provisioning.services import api_user_create_or_update
from tests.fixtures.aws import OPERATOR_PROFILE
from tests.images.conftest import launch_body
from tests.images.test_build_launch import finished, start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("real_services")]
REGION = "eu-west-1"


def post_account(client, **fields):
    return client.post("/api/cloud-accounts/", {"provider": "aws", "name": "prod", **fields}, format="json")


def machine_instances(reservation_uid: str) -> list[str]:
    """Instances of the reservation in the machine's own account (found with its own credentials)."""
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=settings.AWS_ENDPOINT_URL)
    found = ec2.describe_instances(Filters=[{"Name": f"tag:{TAG_RESERVATION}", "Values": [reservation_uid]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"profile": OPERATOR_PROFILE}, "profile"),
        ({"profile": OPERATOR_PROFILE, "operator_managed": True}, "profile"),
        ({"role_arn": "arn:aws:iam::123456789012:role/provisioning", "external_id": "x"}, "access_key_id"),
        (
            {"role_arn": "arn:aws:iam::123456789012:role/p", "access_key_id": "A", "secret_access_key": "B"},
            "external_id",
        ),
        ({}, "access_key_id"),
    ],
    ids=["profile", "profile-claiming-operator", "role-without-keys", "role-without-external-id", "nothing"],
)
def test_a_customer_account_that_would_borrow_credentials_answers_400(aws_endpoint, owner, fields, field):
    answer = post_account(owner[1], **fields)
    assert answer.status_code == 400, answer.json()
    assert field in answer.json()
    assert not CloudAccount.objects.exists()


def test_a_stored_account_without_keys_cannot_launch_while_the_worker_has_credentials(
    celery_worker, aws_endpoint, owner
):
    assert celery_worker.proc.poll() is None
    assert "AWS_ACCESS_KEY_ID" in celery_worker.env and "AWS_SHARED_CREDENTIALS_FILE" in celery_worker.env
    # A row stored before accounts had to carry keys (or written past the service): a profile only.
    acme = owner[0].memberships.get().customer
    legacy = CloudAccount.objects.create(
        customer=acme, provider="aws", name="legacy", profile=OPERATOR_PROFILE
    )
    body = launch_body(
        provider="aws", regions=(REGION,), account=legacy.pk, instance_type="t3.micro", amount=1
    )
    answer = owner[1].post("/api/image-builds/", body, format="json")
    assert answer.status_code == 400, answer.json()
    assert "'legacy' carries no access key of its own" in answer.json()["launch.account"][0]
    assert not Reservation.objects.exists()


def test_an_operator_managed_account_with_a_profile_launches_through_the_worker(
    celery_worker, aws_endpoint, owner, client, settings
):
    settings.STORAGES = {  # no collectstatic manifest in tests
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    acme = owner[0].memberships.get().customer
    hostmaster, _ = api_user_create_or_update(username="hilda", customer_name="Hosting", hostmaster=True)
    client.force_login(hostmaster)
    form = {
        "customer": acme.pk,
        "provider": "aws",
        "name": "managed",
        "profile": OPERATOR_PROFILE,
        "account_id": "",
        "role_arn": "",
        "external_id": "",
    }
    refused = client.post("/admin/images/cloudaccount/add/", form)
    assert refused.status_code == 200 and b"only an account a hostmaster manages" in refused.content
    assert not CloudAccount.objects.exists()
    created = client.post("/admin/images/cloudaccount/add/", {**form, "operator_managed": "on"})
    assert created.status_code == 302, created.content[:2000]
    account = CloudAccount.objects.get()
    assert (
        account.operator_managed
        and owner[1].get("/api/cloud-accounts/").json()["results"][0]["operator_managed"]
    )

    body = start(
        owner[1],
        launch_body(
            provider="aws", regions=(REGION,), account=account.pk, instance_type="t3.micro", amount=2
        ),
    )
    reservation = finished(owner[1], body["reservation"]["id"])
    assert reservation["state"] == "succeeded", reservation
    assert len(machine_instances(reservation["uid"])) == 2  # in the machine's account, as vouched for


def test_a_launch_whose_account_lost_its_hostmasters_vouching_fails_at_the_build_naming_the_account(
    celery_worker, aws_endpoint, owner
):
    from django.db import transaction

    from images.services import image_build_launch
    from provisioning.models import Operation
    from tests.images.conftest import manifest

    acme = owner[0].memberships.get().customer
    account = CloudAccount.objects.create(
        customer=acme, provider="aws", name="vouched", profile=OPERATOR_PROFILE, operator_managed=True
    )
    with transaction.atomic():  # the launch is stored; before it reaches a worker the flag is gone
        launched = image_build_launch(
            customer=acme,
            name="revoked",
            manifest=manifest(provider="aws", regions=(REGION,)),
            launch={"amount": 1, "account": account.pk, "instance_type": "t3.micro"},
        )
        CloudAccount.objects.filter(pk=account.pk).update(operator_managed=False)
    reservation = finished(owner[1], launched.reservation.pk)
    assert reservation["state"] == "failed", reservation
    assert f"'vouched' (#{account.pk}) carries no access key of its own" in reservation["error"]
    operation = Operation.objects.get(pk=reservation["operation"])
    assert operation.step_runs.filter(outcome="failed").exists()
    assert machine_instances(reservation["uid"]) == []
