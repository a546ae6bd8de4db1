"""AWS image builds the way image builders do it (Packer's `amazon-ebs`): find the base AMI of the
distribution → launch a builder instance with the manifest's cloud-config as user data → wait until it
says the build finished → stop it → CreateImage → wait for `available` → terminate the builder.

No call here waits: `advance` looks once, takes the next step if the last one is done, and answers
where the build is; the saga calls it again after a pause (its timer lives in the database). Every
resource carries the build reference (TAG_BUILD), so any call can find again what an earlier one made
(after a crash, a retry, a second delivery), and `remove` can clean up all of it.

How the builder reports that it finished: cloud-init prints the config's final_message
(`provisioning-build-finished <build ref>`) on the console as its last act, and `advance` reads the
console output. Once seen, it tags the builder TAG_FINISHED before it stops it, so that a stopped builder
with the tag is a finished build and one without it is a failed one. An endpoint whose instances never
boot (moto) is told by setting that tag, as a test does.
"""

from __future__ import annotations

import base64
import fnmatch
from typing import Any

from botocore.exceptions import ClientError

from provisioning.providers.base import TAG_BUILD, BuildState, BuildStatus, ProviderError
from provisioning.providers.cloud_config import finished_marker

TAG_FINISHED = "provisioning:build-finished"
# Base images per distribution: (owner, name pattern), the newest match of the architecture wins.
# AWS_BASE_IMAGES overrides them one by one: `debian-12=136693071363:debian-12-*,fedora-41=self:f41-*`.
BASE_IMAGES = {
    "debian-12": ("136693071363", "debian-12-*"),
    "ubuntu-24.04": ("099720109477", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-*-server-*"),
    "fedora-41": ("125523088429", "Fedora-Cloud-Base-Generic-41-*"),
    "centos-9": ("125523088429", "CentOS Stream 9 *"),
    "rhel-9": ("309956199498", "RHEL-9.*_HVM-*"),
    "rhel-10": ("309956199498", "RHEL-10.*_HVM-*"),
}
BUILDER_TYPES = {"x86_64": "t3.small", "arm64": "t4g.small"}


def base_images(override: str) -> dict[str, tuple[str, str]]:
    images = dict(BASE_IMAGES)
    for entry in filter(None, (e.strip() for e in (override or "").split(","))):
        distribution, _, rest = entry.partition("=")
        owner, _, pattern = rest.partition(":")
        if not (distribution and owner and pattern):
            raise ProviderError(
                f"aws: AWS_BASE_IMAGES entry {entry!r} is not distribution=owner:name-pattern",
                retryable=False,
            )
        images[distribution.strip()] = (owner.strip(), pattern.strip())
    return images


def _tags(raw: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}


def _fail(exc: ClientError, what: str) -> ProviderError:
    from provisioning.providers.aws import _error

    return _error(exc, what)


def find_base_image(ec2, *, distribution: str, architecture: str, images: dict) -> str:
    if distribution not in images:
        raise ProviderError(f"aws: no base image is configured for {distribution}", retryable=False)
    owner, pattern = images[distribution]
    try:
        found = ec2.describe_images(
            Owners=[owner],
            Filters=[
                {"Name": "name", "Values": [pattern]},
                {"Name": "state", "Values": ["available"]},
            ],
        )["Images"]
    except ClientError as exc:
        raise _fail(exc, "find the base image") from exc
    # Here rather than as filters: not every endpoint applies wildcards, or keeps the architecture
    # of a registered image (moto does not; an image without one is taken as of any).
    found = [
        i
        for i in found
        if fnmatch.fnmatchcase(i.get("Name", ""), pattern)
        and i.get("Architecture", architecture) == architecture
    ]
    if not found:
        raise ProviderError(
            f"aws: no {architecture} base image of {distribution} (owner {owner}, name {pattern}) in this "
            "region: set AWS_BASE_IMAGES",
            retryable=False,
        )
    return max(found, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))["ImageId"]


def builders(ec2, build_ref: str, states: list[str]) -> list[dict]:
    filters = [
        {"Name": f"tag:{TAG_BUILD}", "Values": [build_ref]},
        {"Name": "instance-state-name", "Values": states},
    ]
    try:
        pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
        return [raw for page in pages for r in page["Reservations"] for raw in r["Instances"]]
    except ClientError as exc:
        raise _fail(exc, "look for the builder instance") from exc


def images_of(ec2, build_ref: str) -> list[dict]:
    try:
        return ec2.describe_images(
            Owners=["self"], Filters=[{"Name": f"tag:{TAG_BUILD}", "Values": [build_ref]}]
        )["Images"]
    except ClientError as exc:
        raise _fail(exc, "look for the image") from exc


LIVE = ["pending", "running", "stopping", "stopped"]


def start(
    ec2, *, build_ref: str, name: str, architecture: str, base_image: str, user_data: str, tags: dict
) -> str:
    """The builder's instance id (or the AMI's, once one exists): found again by the build reference,
    launched only if there is none."""
    made = images_of(ec2, build_ref)
    if made:
        return made[0]["ImageId"]
    found = builders(ec2, build_ref, LIVE)
    if found:
        return found[0]["InstanceId"]
    tag_list = [{"Key": k, "Value": v} for k, v in sorted({**tags, "Name": f"builder {name}"[:255]}.items())]
    try:
        reply = ec2.run_instances(
            ImageId=base_image,
            InstanceType=BUILDER_TYPES.get(architecture, "t3.small"),
            MinCount=1,
            MaxCount=1,
            # EC2 answers a repeated call with the same token with the first call's instance.
            ClientToken=build_ref[:64],
            UserData=user_data,
            InstanceInitiatedShutdownBehavior="stop",
            TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
        )
    except ClientError as exc:
        raise _fail(exc, "launch the builder instance") from exc
    return reply["Instances"][0]["InstanceId"]


def build_ref_of(ec2, handle: str) -> str:
    try:
        if handle.startswith("ami-"):
            found = ec2.describe_images(ImageIds=[handle])["Images"]
        else:
            found = [
                i
                for r in ec2.describe_instances(InstanceIds=[handle])["Reservations"]
                for i in r["Instances"]
            ]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code.startswith(("InvalidAMIID", "InvalidInstanceID")):
            return ""
        raise _fail(exc, "look at the build") from exc
    return _tags(found[0]).get(TAG_BUILD, "") if found else ""


def _finished(ec2, builder: dict, build_ref: str) -> bool:
    if _tags(builder).get(TAG_FINISHED) == build_ref:
        return True
    try:
        output = ec2.get_console_output(InstanceId=builder["InstanceId"], Latest=True).get("Output") or ""
    except ClientError:
        return False  # not every instance type keeps the latest output: the next look reads it again
    try:
        text = base64.b64decode(output + "=" * (-len(output) % 4)).decode(errors="replace")
    except ValueError:
        text = output  # an endpoint that sends it as it is
    return finished_marker(build_ref) in text


def advance(ec2, *, handle: str, build_ref: str, ami_name: str, tags: dict) -> BuildStatus:
    """One look at the build `handle` names (its builder or its AMI; `build_ref` is what its tags
    say, see `build_ref_of`), taking the next step if the last one is done."""
    if not build_ref:
        return BuildStatus(BuildState.FAILED, handle, "neither the builder nor the image exists (removed?)")
    try:
        return _advance(ec2, build_ref, handle, ami_name, tags)
    except ClientError as exc:
        raise _fail(exc, "build the image") from exc


def _advance(ec2, build_ref: str, handle: str, ami_name: str, tags: dict) -> BuildStatus:
    made = images_of(ec2, build_ref)
    live = builders(ec2, build_ref, LIVE)
    if made:
        image = made[0]
        state = image.get("State", "pending")
        if state in ("failed", "error", "invalid", "deregistered", "disabled"):
            reason = image.get("StateReason", {}).get("Message", state)
            return BuildStatus(BuildState.FAILED, image["ImageId"], f"the image is {state}: {reason}")
        if state != "available":
            return BuildStatus(BuildState.BUILDING, image["ImageId"], f"the image is {state}")
        snapshots = snapshots_of(ec2, image)
        if snapshots:
            ec2.create_tags(
                Resources=snapshots, Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())]
            )
        if live:
            ec2.terminate_instances(InstanceIds=[b["InstanceId"] for b in live])
        return BuildStatus(BuildState.READY, image["ImageId"])
    if not live:
        return BuildStatus(BuildState.FAILED, handle, "the builder instance ended before the image was made")
    builder = live[0]
    state = builder["State"]["Name"]
    finished = _tags(builder).get(TAG_FINISHED) == build_ref
    if state == "running":
        if not _finished(ec2, builder, build_ref):
            return BuildStatus(BuildState.BUILDING, handle, "the builder is applying the manifest")
        if not finished:
            ec2.create_tags(
                Resources=[builder["InstanceId"]], Tags=[{"Key": TAG_FINISHED, "Value": build_ref}]
            )
        ec2.stop_instances(InstanceIds=[builder["InstanceId"]])
        return BuildStatus(BuildState.BUILDING, handle, "the builder finished; stopping it")
    if state in ("pending", "stopping"):
        return BuildStatus(BuildState.BUILDING, handle, f"the builder is {state}")
    if not finished:  # stopped on its own, before it said it finished
        return BuildStatus(BuildState.FAILED, handle, "the builder stopped before the build finished")
    try:
        # The AMI name is unique per account and region: a second CreateImage of this build is refused.
        image_id = ec2.create_image(
            InstanceId=builder["InstanceId"],
            Name=ami_name,
            Description=f"built by provisioning ({build_ref})",
            TagSpecifications=[
                {"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
            ],
        )["ImageId"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidAMIName.Duplicate":
            raise
        return BuildStatus(BuildState.BUILDING, handle, "the image is being created")
    return BuildStatus(BuildState.BUILDING, image_id, "the image is being created")


def snapshots_of(ec2, image: dict) -> list[str]:
    ids = {
        m["Ebs"]["SnapshotId"]
        for m in image.get("BlockDeviceMappings", [])
        if m.get("Ebs", {}).get("SnapshotId")
    }
    try:
        # CreateImage describes the snapshots it makes with the AMI's id, also before the AMI lists them.
        found = ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": "description", "Values": [f"*{image['ImageId']}*"]}]
        )["Snapshots"]
    except ClientError as exc:
        raise _fail(exc, "look for the image's snapshots") from exc
    return sorted(ids | {s["SnapshotId"] for s in found})


def remove(ec2, *, handle: str, build_ref: str = "") -> dict[str, Any]:
    """Terminate the build's builders, deregister its AMIs and delete their snapshots; what is gone
    already is no error. Answers what it removed."""
    build_ref = build_ref or build_ref_of(ec2, handle)
    removed: dict[str, Any] = {"instances": [], "images": [], "snapshots": []}
    if not build_ref:
        return removed
    try:
        live = builders(ec2, build_ref, [*LIVE, "shutting-down"])
        if live:
            removed["instances"] = [b["InstanceId"] for b in live]
            ec2.terminate_instances(InstanceIds=removed["instances"])
        for image in images_of(ec2, build_ref):
            snapshots = snapshots_of(ec2, image)
            ec2.deregister_image(ImageId=image["ImageId"])
            removed["images"].append(image["ImageId"])
            for snapshot in snapshots:
                try:
                    ec2.delete_snapshot(SnapshotId=snapshot)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "InvalidSnapshot.NotFound":
                        raise
                removed["snapshots"].append(snapshot)
    except ClientError as exc:
        raise _fail(exc, "remove the build") from exc
    return removed
