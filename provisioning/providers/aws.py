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

import os
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.configprovider import ConstantProvider
from botocore.credentials import CredentialResolver
from botocore.exceptions import BotoCoreError, ClientError

from provisioning.providers import aws_build, cloud_config
from provisioning.providers.base import (
    TAG_BUILD,
    TAG_TOKEN,
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
    user_data_limit = 16384

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
        """Launch the builder (see aws_build.py); the id answered names the build until its AMI exists."""
        self._call("start_build")
        ec2 = self.ec2(region)
        architecture = ARCHITECTURES.get(manifest.get("architecture", ""), "x86_64")
        existing = aws_build.images_of(ec2, build_ref) or aws_build.builders(ec2, build_ref, aws_build.LIVE)
        base = "" if existing else self._base_image(ec2, manifest, architecture)
        return aws_build.start(
            ec2,
            build_ref=build_ref,
            name=name,
            architecture=architecture,
            base_image=base,
            user_data=cloud_config.user_data(manifest, build_ref=build_ref),
            tags=self._build_tags(build_ref, name),
        )

    def _base_image(self, ec2, manifest: dict, architecture: str) -> str:
        from django.conf import settings

        override = getattr(settings, "AWS_BASE_IMAGES", None) or os.environ.get("AWS_BASE_IMAGES", "")
        return aws_build.find_base_image(
            ec2,
            distribution=manifest.get("distribution", ""),
            architecture=architecture,
            images=aws_build.base_images(override),
        )

    @staticmethod
    def _build_tags(build_ref: str, name: str = "") -> dict[str, str]:
        return {TAG_BUILD: build_ref, "Name": (name or build_ref)[:255]}

    def describe_build(self, *, region: str, image_id: str) -> BuildStatus:
        """One look at the build, taking its next step (stop the builder, CreateImage, terminate it)
        once the last one is done: READY answers the AMI's id."""
        self._call("describe_build")
        ec2 = self.ec2(region)
        build_ref = aws_build.build_ref_of(ec2, image_id)
        return aws_build.advance(
            ec2,
            handle=image_id,
            build_ref=build_ref,
            ami_name=f"provisioning-{build_ref}",
            tags=self._build_tags(build_ref),
        )

    def delete_image(self, *, region: str, image_id: str) -> None:
        """Remove the build: its builder, its AMI and the AMI's snapshots."""
        self._call("delete_image")
        aws_build.remove(self.ec2(region), handle=image_id)

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
