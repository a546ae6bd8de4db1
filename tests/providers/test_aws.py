"""The AWS provider against a moto server on loopback: boto3 stays real and talks HTTP to it."""

import base64
import time

import pytest

from images.manifest import validate_manifest
from provisioning.providers import BuildState, InstanceState, LaunchRequest, ProviderError, cloud_config
from provisioning.providers.base import TAG_BUILD, TAG_CUSTOMER, TAG_RESERVATION, TAG_TOKEN
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


def built(aws, build_ref: str, name: str = "web", region: str = REGION) -> str:
    """Start a build and look at it until it is ready (MotoBuilders says the builder finished)."""
    handle = aws.start_build(region=region, build_ref=build_ref, name=name, manifest=MANIFEST)
    for _ in range(100):
        status = aws.describe_build(region=region, image_id=handle)
        assert status.state != BuildState.FAILED, status
        if status.state == BuildState.READY:
            return status.image_id
        time.sleep(0.1)
    raise AssertionError(f"the build was not ready: {status}")


def test_it_builds_on_one_builder_with_the_cloud_config_and_leaves_one_tagged_ami(aws):
    ec2 = aws.ec2(REGION)
    handle = aws.start_build(region=REGION, build_ref="build-0001", name="web", manifest=MANIFEST)
    assert handle.startswith("i-")
    assert aws.start_build(region=REGION, build_ref="build-0001", name="web", manifest=MANIFEST) == handle
    user_data = ec2.describe_instance_attribute(InstanceId=handle, Attribute="userData")["UserData"]["Value"]
    assert base64.b64decode(user_data).decode() == cloud_config.user_data(
        validate_manifest({**MANIFEST, "target": {"provider": "aws", "regions": [REGION]}})[0],
        build_ref="build-0001",
    )
    [builder] = builders(ec2, "build-0001")
    base = ec2.describe_images(ImageIds=[builder["ImageId"]])["Images"][0]
    assert base["Name"] == "fedora-41-base-x86_64"

    image_id = built(aws, "build-0001")
    assert image_id.startswith("ami-")
    assert aws.start_build(region=REGION, build_ref="build-0001", name="web", manifest=MANIFEST) == image_id
    assert [b["State"]["Name"] for b in builders(ec2, "build-0001")] in (["terminated"], ["shutting-down"])
    [image] = ec2.describe_images(
        Owners=["self"], Filters=[{"Name": f"tag:{TAG_BUILD}", "Values": ["build-0001"]}]
    )["Images"]
    assert (image["ImageId"], image["State"]) == (image_id, "available")
    snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
    [snapshot] = ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]}[TAG_BUILD] == "build-0001"

    aws.delete_image(region=REGION, image_id=image_id)
    aws.delete_image(region=REGION, image_id=image_id)  # gone already: no error
    assert (
        ec2.describe_images(
            Owners=["self"], Filters=[{"Name": f"tag:{TAG_BUILD}", "Values": ["build-0001"]}]
        )["Images"]
        == []
    )
    assert ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": snapshots}])["Snapshots"] == []


def test_a_builder_that_stops_before_it_finished_fails_the_build_and_removing_it_leaves_nothing(aws):
    ec2 = aws.ec2(REGION)
    handle = aws.start_build(region=REGION, build_ref="build-0003", name="stuck-web", manifest=MANIFEST)
    assert aws.describe_build(region=REGION, image_id=handle).state == BuildState.BUILDING
    ec2.stop_instances(InstanceIds=[handle])  # it shut itself down: cloud-init never said it finished
    status = aws.describe_build(region=REGION, image_id=handle)
    assert (status.state, status.message) == (
        BuildState.FAILED,
        "the builder stopped before the build finished",
    )
    aws.delete_image(region=REGION, image_id=handle)
    assert [b["State"]["Name"] for b in builders(ec2, "build-0003")] in (["terminated"], ["shutting-down"])


def test_a_base_image_that_cannot_be_found_is_a_permanent_error_naming_the_setting(aws, settings):
    settings.AWS_BASE_IMAGES = "fedora-41=self:no-such-image-*"
    with pytest.raises(ProviderError) as caught:
        aws.start_build(region=REGION, build_ref="build-0004", name="web", manifest=MANIFEST)
    assert not caught.value.retryable
    assert "AWS_BASE_IMAGES" in caught.value.message
    assert builders(aws.ec2(REGION), "build-0004") == []


def builders(ec2, build_ref: str) -> list[dict]:
    reply = ec2.describe_instances(Filters=[{"Name": f"tag:{TAG_BUILD}", "Values": [build_ref]}])
    return [i for r in reply["Reservations"] for i in r["Instances"]]


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
    image_id = built(aws, "build-0002", name="app")
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
    assert built(provider, "build-role", name="r").startswith("ami-")
