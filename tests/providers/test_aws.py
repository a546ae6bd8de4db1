"""The AWS provider against a moto server on loopback: boto3 stays real and talks HTTP to it."""

import pytest

from provisioning.providers import BuildState, InstanceState, LaunchRequest
from provisioning.providers.base import TAG_CUSTOMER, TAG_RESERVATION, TAG_TOKEN
from tests.providers.conftest import MANIFEST, ssh_public_key

REGION = "eu-central-1"


def request(image_id: str, key_name: str, token: str = "tok-aws-1", count: int = 2) -> LaunchRequest:
    return LaunchRequest(
        region=REGION,
        image_id=image_id,
        count=count,
        instance_type="t3.micro",
        key_name=key_name,
        client_token=token,
        tags={TAG_RESERVATION: "7", TAG_CUSTOMER: "Acme"},
    )


def test_it_registers_an_image_once_per_build_and_deregisters_it(aws):
    image_id = aws.start_build(region=REGION, build_ref="build-0001", name="web", manifest=MANIFEST)
    assert aws.start_build(region=REGION, build_ref="build-0001", name="web", manifest=MANIFEST) == image_id
    assert aws.describe_build(region=REGION, image_id=image_id).state == BuildState.READY
    aws.delete_image(region=REGION, image_id=image_id)
    aws.delete_image(region=REGION, image_id=image_id)  # gone already: no error
    assert aws.describe_build(region=REGION, image_id=image_id).state == BuildState.FAILED


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_it_imports_a_public_key_once_and_finds_it_by_fingerprint_after(aws, kind):
    key = ssh_public_key(kind)
    first = aws.ensure_public_key(region=REGION, name=f"first-{kind}", public_key=key)
    again = aws.ensure_public_key(region=REGION, name=f"other-{kind}", public_key=key)
    assert first.imported and not again.imported
    assert again.name == f"first-{kind}"
    keys = aws.ec2(REGION).describe_key_pairs()["KeyPairs"]
    assert [k["KeyName"] for k in keys].count(f"first-{kind}") == 1
    assert not [k for k in keys if k["KeyName"] == f"other-{kind}"]


def test_it_launches_tagged_instances_with_the_key_once_per_token_and_terminates_them(aws):
    image_id = aws.start_build(region=REGION, build_ref="build-0002", name="app", manifest=MANIFEST)
    key = aws.ensure_public_key(region=REGION, name="launch-key", public_key=ssh_public_key())
    aws.check_launch(request(image_id, key.name))
    launched = aws.launch_instances(request(image_id, key.name))
    assert len(launched) == 2
    again = aws.launch_instances(request(image_id, key.name))
    assert sorted(i.id for i in again) == sorted(i.id for i in launched)

    found = aws.find_instances(region=REGION, tags={TAG_RESERVATION: "7"})
    assert sorted(i.id for i in found) == sorted(i.id for i in launched)
    described = aws.describe_instances(region=REGION, instance_ids=[i.id for i in launched])
    for instance in described:
        assert instance.key_name == "launch-key"
        assert instance.image_id == image_id
        assert instance.tags[TAG_CUSTOMER] == "Acme"
        assert instance.tags[TAG_TOKEN] == "tok-aws-1"
        assert instance.private_ip

    aws.terminate_instances(region=REGION, instance_ids=[i.id for i in launched])
    assert aws.wait_terminated(region=REGION, tags={TAG_RESERVATION: "7"}, timeout=10)
    assert aws.find_instances(region=REGION, tags={TAG_RESERVATION: "7"}) == []
    aws.terminate_instances(region=REGION, instance_ids=[i.id for i in launched])  # again: no error
    states = {i.state for i in aws.describe_instances(region=REGION, instance_ids=[i.id for i in launched])}
    assert states == {InstanceState.TERMINATED}


def test_it_assumes_the_accounts_role_with_its_external_id(aws_endpoint):
    from provisioning.providers.aws import AwsProvider
    from provisioning.providers.base import ProviderError

    account = {
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "role_arn": "arn:aws:iam::123456789012:role/provisioning",
    }
    with pytest.raises(ProviderError, match="names a role but no external id"):
        AwsProvider(account).start_build(region=REGION, build_ref="build-role", name="r", manifest=MANIFEST)
    provider = AwsProvider({**account, "external_id": "acme-2026"})
    image_id = provider.start_build(region=REGION, build_ref="build-role", name="r", manifest=MANIFEST)
    assert provider.describe_build(region=REGION, image_id=image_id).state == BuildState.READY
