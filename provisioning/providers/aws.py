"""The AWS provider: EC2 through boto3, at `settings.AWS_ENDPOINT_URL` when it is set (a moto server in
the tests; nothing here knows whether it talks to AWS).

The account (plain data from the customer's cloud account) carries the credentials: an access key
pair, and optionally a role to assume with it (and an external id). The session is built from the
account alone, in a botocore session that reads no config or credentials file and has no credential
chain: the worker machine's own credentials (environment, profiles, instance metadata) are never a
fallback, else a customer could launch into, and be billed to, the operator's account. Only an account
a hostmaster marked `operator_managed` may name a profile of the machine or use its credential chain.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.configprovider import ConstantProvider
from botocore.credentials import CredentialResolver
from botocore.exceptions import BotoCoreError, ClientError

from provisioning.providers.base import (
    TAG_BUILD,
    TAG_TOKEN,
    BuildState,
    BuildStatus,
    Instance,
    InstanceState,
    KeyPair,
    LaunchRequest,
    Provider,
    ProviderError,
    aws_fingerprints,
)

ARCHITECTURES = {"x86_64": "x86_64", "aarch64": "arm64"}
# Errors that no retry mends: the request itself is wrong or not allowed.
PERMANENT = {
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidAMIID.Malformed",
    "InvalidAMIID.NotFound",
    "InvalidKeyPair.Format",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidKeyPair.NotFound",
    "OptInRequired",
    "Unsupported",
}
_LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]
_STATES = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPED,
    "stopped": InstanceState.STOPPED,
    "shutting-down": InstanceState.TERMINATED,
    "terminated": InstanceState.TERMINATED,
}


def endpoint_url() -> str | None:
    from django.conf import settings

    return getattr(settings, "AWS_ENDPOINT_URL", None) or None


class AccountRefused(ProviderError):
    """The account carries no credentials of its own and may not borrow the machine's."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, code="AccountWithoutCredentials")


def _isolated() -> botocore.session.Session:
    """A botocore session that knows no file, profile or credential provider of this machine."""
    core = botocore.session.Session()
    store = core.get_component("config_store")
    # Constants, so that no environment variable (AWS_PROFILE, AWS_CONFIG_FILE, ...) reaches them.
    store.set_config_provider("profile", ConstantProvider(None))
    store.set_config_provider("config_file", ConstantProvider(os.devnull))
    store.set_config_provider("credentials_file", ConstantProvider(os.devnull))
    core.register_component("credential_provider", CredentialResolver(providers=[]))
    return core


def _keyed(key: str, secret: str, region: str, token: str | None = None) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
        botocore_session=_isolated(),
    )


def session_for(account: dict[str, Any], region: str) -> boto3.session.Session:
    """A boto3 session acting as `account` in `region` (assuming its role if it names one)."""
    who = f"the cloud account {account['label']}" if account.get("label") else "the cloud account"
    key, secret = account.get("access_key_id") or "", account.get("secret_access_key") or ""
    if key and secret:
        session = _keyed(key, secret, region)
    elif account.get("operator_managed"):
        # A hostmaster's decision: the machine's profile, or its chain to assume the role with.
        session = boto3.session.Session(profile_name=account.get("profile") or None, region_name=region)
    else:
        raise AccountRefused(
            f"aws: {who} carries no access key of its own, and the service never "
            "acts with its own credentials for a customer: add the account's access key and secret "
            "(or ask a hostmaster to manage the account)."
        )
    role = account.get("role_arn")
    if not role:
        return session
    if not account.get("external_id") and not account.get("operator_managed"):
        raise AccountRefused(f"aws: {who} names a role but no external id: add it.")
    sts = session.client("sts", endpoint_url=endpoint_url())
    kwargs = {"RoleArn": role, "RoleSessionName": "provisioning"}
    if account.get("external_id"):
        kwargs["ExternalId"] = account["external_id"]
    creds = sts.assume_role(**kwargs)["Credentials"]
    return _keyed(creds["AccessKeyId"], creds["SecretAccessKey"], region, creds["SessionToken"])


def _error(exc: Exception, what: str) -> ProviderError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        return ProviderError(f"aws: {what}: {code}: {message}", retryable=code not in PERMANENT, code=code)
    return ProviderError(f"aws: {what}: {exc}")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _instance(raw: dict, region: str) -> Instance:
    return Instance(
        id=raw["InstanceId"],
        region=region,
        state=_STATES.get(raw.get("State", {}).get("Name", ""), InstanceState.PENDING),
        image_id=raw.get("ImageId", ""),
        instance_type=raw.get("InstanceType", ""),
        key_name=raw.get("KeyName", ""),
        private_ip=raw.get("PrivateIpAddress", ""),
        public_ip=raw.get("PublicIpAddress", ""),
        dns_name=raw.get("PublicDnsName") or raw.get("PrivateDnsName", ""),
        tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
    )


class AwsProvider(Provider):
    name = "aws"
    title = "Amazon Web Services (EC2)"
    instance_types = (
        "t3.nano",
        "t3.micro",
        "t3.small",
        "t3.medium",
        "t3.large",
        "t4g.micro",
        "t4g.small",
        "m5.large",
        "m5.xlarge",
        "c5.large",
    )
    default_instance_type = "t3.micro"

    def __init__(self, account: dict[str, Any] | None = None, *, fault: str = "") -> None:
        super().__init__(account, fault=fault)
        self._sessions: dict[str, boto3.session.Session] = {}

    def ec2(self, region: str):
        if region not in self._sessions:
            try:
                self._sessions[region] = session_for(self.account, region)
            except (ClientError, BotoCoreError) as exc:
                raise _error(exc, "assume the account's role") from exc
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30)
        return self._sessions[region].client("ec2", endpoint_url=endpoint_url(), config=config)

    def regions(self) -> list[str]:
        return boto3.session.Session().get_available_regions("ec2")

    # --- images ----------------------------------------------------------------------------------

    def start_build(self, *, region: str, build_ref: str, name: str, manifest: dict) -> str:
        self._call("start_build")
        ec2 = self.ec2(region)
        # AMI names are unique per account and region: the name carries the build reference, so a
        # repeated call finds the image it registered before instead of registering a second one.
        ami_name = f"{name[:80]}-{build_ref}"
        try:
            found = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [ami_name]}])
            if found["Images"]:
                return found["Images"][0]["ImageId"]
            checksum = hashlib.sha256(repr(sorted(manifest.items())).encode()).hexdigest()[:16]
            image_id = ec2.register_image(
                Name=ami_name,
                Description=f"{manifest.get('distribution', '')} built by provisioning ({checksum})"[:255],
                Architecture=ARCHITECTURES.get(manifest.get("architecture", ""), "x86_64"),
                RootDeviceName="/dev/xvda",
                VirtualizationType="hvm",
                BlockDeviceMappings=[
                    {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 10, "VolumeType": "gp3"}}
                ],
            )["ImageId"]
            ec2.create_tags(Resources=[image_id], Tags=_tag_list({TAG_BUILD: build_ref, "Name": name[:255]}))
            return image_id
        except ClientError as exc:
            raise _error(exc, "register the image") from exc

    def describe_build(self, *, region: str, image_id: str) -> BuildStatus:
        self._call("describe_build")
        try:
            images = self.ec2(region).describe_images(ImageIds=[image_id])["Images"]
        except ClientError as exc:
            if _code(exc).startswith("InvalidAMIID"):
                return BuildStatus(BuildState.FAILED, image_id, "the image does not exist (deregistered?)")
            raise _error(exc, "describe the image") from exc
        if not images:
            return BuildStatus(BuildState.FAILED, image_id, "the image does not exist (deregistered?)")
        state = images[0].get("State", "pending")
        if state == "available":
            return BuildStatus(BuildState.READY, image_id)
        if state in ("failed", "error", "invalid", "deregistered", "disabled"):
            reason = images[0].get("StateReason", {}).get("Message", state)
            return BuildStatus(BuildState.FAILED, image_id, reason)
        return BuildStatus(BuildState.BUILDING, image_id, state)

    def delete_image(self, *, region: str, image_id: str) -> None:
        self._call("delete_image")
        try:
            self.ec2(region).deregister_image(ImageId=image_id)
        except ClientError as exc:
            if not _code(exc).startswith("InvalidAMIID"):
                raise _error(exc, "deregister the image") from exc

    # --- keys ------------------------------------------------------------------------------------

    def ensure_public_key(self, *, region: str, name: str, public_key: str) -> KeyPair:
        self._call("ensure_public_key")
        ec2 = self.ec2(region)
        fingerprints = aws_fingerprints(public_key)
        try:
            found = ec2.describe_key_pairs(Filters=[{"Name": "fingerprint", "Values": fingerprints}])
            if found["KeyPairs"]:
                key = found["KeyPairs"][0]
                return KeyPair(key["KeyName"], key["KeyFingerprint"], imported=False)
            try:
                key = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public_key.strip().encode())
            except ClientError as exc:
                if _code(exc) != "InvalidKeyPair.Duplicate":
                    raise
                # Imported meanwhile by a concurrent launch: it must be this very key.
                key = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
                if key["KeyFingerprint"] not in fingerprints:
                    raise ProviderError(
                        f"aws: a different key is imported as {name!r} already", retryable=False
                    ) from None
                return KeyPair(name, key["KeyFingerprint"], imported=False)
            return KeyPair(key["KeyName"], key["KeyFingerprint"], imported=True)
        except ClientError as exc:
            raise _error(exc, "import the public key") from exc

    # --- instances -------------------------------------------------------------------------------

    def _run_args(self, request: LaunchRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "ImageId": request.image_id,
            "InstanceType": request.instance_type,
            "MinCount": request.count,
            "MaxCount": request.count,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": _tag_list({**request.tags, TAG_TOKEN: request.client_token}),
                }
            ],
        }
        if request.key_name:
            args["KeyName"] = request.key_name
        return args

    def check_launch(self, request: LaunchRequest) -> None:
        self._call("check_launch")
        try:
            self.ec2(request.region).run_instances(DryRun=True, **self._run_args(request))
        except ClientError as exc:
            if _code(exc) == "DryRunOperation":
                return  # it would have succeeded
            raise _error(exc, "check the launch (dry run)") from exc
        raise ProviderError("aws: the dry run launched instances", retryable=False)

    def launch_instances(self, request: LaunchRequest) -> list[Instance]:
        self._call("launch_instances")
        # The ClientToken makes EC2 itself answer a repeated call with the first call's instances;
        # looking for the token's tag first also covers an endpoint that does not honour it.
        existing = self.find_instances(region=request.region, tags={TAG_TOKEN: request.client_token})
        if existing:
            return existing
        try:
            reply = self.ec2(request.region).run_instances(
                ClientToken=request.client_token, **self._run_args(request)
            )
        except ClientError as exc:
            raise _error(exc, "run the instances") from exc
        return [_instance(raw, request.region) for raw in reply["Instances"]]

    def _describe(self, region: str, **kwargs) -> list[Instance]:
        found = []
        try:
            for page in self.ec2(region).get_paginator("describe_instances").paginate(**kwargs):
                for reservation in page["Reservations"]:
                    found.extend(_instance(raw, region) for raw in reservation["Instances"])
        except ClientError as exc:
            if _code(exc) == "InvalidInstanceID.NotFound":
                return []
            raise _error(exc, "describe the instances") from exc
        return found

    def find_instances(self, *, region: str, tags: dict[str, str]) -> list[Instance]:
        self._call("find_instances")
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]
        filters.append({"Name": "instance-state-name", "Values": _LIVE})
        return self._describe(region, Filters=filters)

    def describe_instances(self, *, region: str, instance_ids: list[str]) -> list[Instance]:
        self._call("describe_instances")
        if not instance_ids:
            return []
        return self._describe(region, InstanceIds=list(instance_ids))

    def terminate_instances(self, *, region: str, instance_ids: list[str]) -> None:
        self._call("terminate_instances")
        if not instance_ids:
            return
        try:
            self.ec2(region).terminate_instances(InstanceIds=list(instance_ids))
        except ClientError as exc:
            if _code(exc) != "InvalidInstanceID.NotFound":
                raise _error(exc, "terminate the instances") from exc
            for instance_id in instance_ids:  # terminate the ones that still exist, one by one
                try:
                    self.ec2(region).terminate_instances(InstanceIds=[instance_id])
                except ClientError as inner:
                    if _code(inner) != "InvalidInstanceID.NotFound":
                        raise _error(inner, "terminate the instances") from inner
