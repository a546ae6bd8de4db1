"""A customer's cloud account acts only through what it carries, never through the machine's own
credentials (a confused deputy). The machine here has working credentials for the moto account
123456789012 in its environment and as the profile `operator`; the customer has keys of its own in
the moto account 111111111111."""

import boto3
import pytest

from provisioning.providers.aws import AwsProvider
from provisioning.providers.base import TAG_BUILD, ProviderError
from tests.fixtures.aws import OPERATOR_PROFILE
from tests.providers.conftest import MANIFEST
from tests.providers.test_aws import built

REGION = "eu-west-1"
MACHINE_ACCOUNT = "123456789012"  # what the environment's keys (and the profile) reach
CUSTOMER_ACCOUNT = "111111111111"


def machine(service: str):
    """A client with the machine's own credentials, as boto3 finds them."""
    from django.conf import settings

    return boto3.client(service, region_name=REGION, endpoint_url=settings.AWS_ENDPOINT_URL)


@pytest.fixture
def customer_keys(aws_endpoint) -> dict[str, str]:
    """Access keys of an IAM user of the customer's own account."""
    creds = machine("sts").assume_role(
        RoleArn=f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/admin", RoleSessionName="setup"
    )["Credentials"]
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=aws_endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    name = f"customer-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def images_of_machine_account() -> list[str]:
    return [i["Name"] for i in machine("ec2").describe_images(Owners=["self"])["Images"]]


def builders_of_machine_account(build_ref: str) -> list[str]:
    found = machine("ec2").describe_instances(Filters=[{"Name": f"tag:{TAG_BUILD}", "Values": [build_ref]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def test_the_machine_has_working_credentials_of_its_own(aws_endpoint):
    assert machine("sts").get_caller_identity()["Account"] == MACHINE_ACCOUNT
    profile = boto3.session.Session(profile_name=OPERATOR_PROFILE, region_name=REGION)
    assert (
        profile.client("sts", endpoint_url=aws_endpoint).get_caller_identity()["Account"] == MACHINE_ACCOUNT
    )


@pytest.mark.parametrize(
    "account",
    [
        {"profile": OPERATOR_PROFILE},
        {"role_arn": f"arn:aws:iam::{MACHINE_ACCOUNT}:role/provisioning", "external_id": "x"},
        {"role_arn": f"arn:aws:iam::{MACHINE_ACCOUNT}:role/provisioning"},
        {},
    ],
    ids=["profile", "role-without-keys", "role-without-external-id", "nothing"],
)
def test_a_customer_account_without_keys_never_acts_with_the_machines_credentials(aws_endpoint, account):
    provider = AwsProvider({**account, "label": "'borrowed' (#7)"})
    with pytest.raises(ProviderError) as refused:
        provider.start_build(region=REGION, build_ref="build-borrowed", name="borrowed", manifest=MANIFEST)
    assert refused.value.retryable is False
    assert "'borrowed' (#7)" in refused.value.message
    assert builders_of_machine_account("build-borrowed") == []


def test_a_customer_account_with_keys_acts_in_its_own_account_only(aws_endpoint, customer_keys, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", OPERATOR_PROFILE)  # the machine's settings change nothing
    provider = AwsProvider({**customer_keys, "profile": OPERATOR_PROFILE})
    session = provider.ec2(REGION)
    assert (
        provider._sessions[REGION].client("sts", endpoint_url=aws_endpoint).get_caller_identity()["Account"]
        == CUSTOMER_ACCOUNT
    )
    session.register_image(  # the customer's own base image: the machine's are not reached
        Name="fedora-41-base-x86_64",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )
    handle = provider.start_build(region=REGION, build_ref="build-own", name="own", manifest=MANIFEST)
    found = session.describe_instances(Filters=[{"Name": f"tag:{TAG_BUILD}", "Values": ["build-own"]}])
    assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [handle]
    assert builders_of_machine_account("build-own") == []
    provider.delete_image(region=REGION, image_id=handle)


def test_a_role_is_assumed_with_the_accounts_own_keys_and_external_id(aws_endpoint, customer_keys):
    provider = AwsProvider(
        {
            **customer_keys,
            "role_arn": f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/provisioning",
            "external_id": "acme-2026",
        }
    )
    provider.ec2(REGION)
    sts = provider._sessions[REGION].client("sts", endpoint_url=aws_endpoint)
    assert ":assumed-role/provisioning/" in sts.get_caller_identity()["Arn"]
    assert sts.get_caller_identity()["Account"] == CUSTOMER_ACCOUNT


def test_an_operator_managed_account_may_use_a_profile_of_the_machine(aws_endpoint):
    provider = AwsProvider({"profile": OPERATOR_PROFILE, "operator_managed": True})
    assert built(provider, "build-op", name="op", region=REGION).startswith("ami-")
    assert "provisioning-build-op" in images_of_machine_account()
