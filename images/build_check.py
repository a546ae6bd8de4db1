"""`manage.py aws_build_check`: one small build against a real AWS account, as the saga runs it but
from the shell, so that an operator sees every step (base AMI, builder, stop, CreateImage) and what
goes wrong, before customers do. It removes everything it made unless asked to keep the AMI."""

from __future__ import annotations

import time
from collections.abc import Callable

from images.manifest import validate_manifest
from provisioning.providers import BuildState, ProviderError
from provisioning.providers.aws import AwsProvider

CHECK_MANIFEST = {
    "distribution": "debian-12",
    "architecture": "x86_64",
    "packages": ["curl"],
    "customizations": {
        "files": [
            {"path": "/etc/motd", "content": "built by provisioning aws_build_check\n", "mode": "0644"}
        ],
    },
}


def aws_build_check(
    *,
    region: str,
    account: dict,
    distribution: str,
    timeout: float,
    interval: float,
    keep: bool,
    say: Callable[[str], None],
) -> str:
    """Build, wait (bounded), and remove unless `keep`; answer the AMI id. Raises ProviderError."""
    manifest, errors = validate_manifest(
        {**CHECK_MANIFEST, "distribution": distribution, "target": {"provider": "aws", "regions": [region]}}
    )
    if errors:
        raise ProviderError(f"the check's manifest is refused: {errors}", retryable=False)
    provider = AwsProvider({**account, "operator_managed": True, "label": "aws_build_check"})
    ref = f"build-check-{int(time.time())}"
    handle = provider.start_build(region=region, build_ref=ref, name="aws-build-check", manifest=manifest)
    say(f"{ref}: builder {handle} launched in {region}")
    deadline = time.monotonic() + timeout
    ready = ""
    try:
        while not ready:
            status = provider.describe_build(region=region, image_id=handle)
            say(f"{ref}: {status.state}: {status.message or status.image_id}")
            if status.state == BuildState.FAILED:
                raise ProviderError(f"the build failed: {status.message}", retryable=False)
            if status.state == BuildState.READY:
                ready = status.image_id
            elif time.monotonic() > deadline:
                raise ProviderError(f"the build did not finish within {timeout:g} s", retryable=False)
            else:
                time.sleep(interval)
    except BaseException:
        provider.delete_image(region=region, image_id=handle)
        say(f"{ref}: removed the builder and whatever image it made")
        raise
    if not keep:
        provider.delete_image(region=region, image_id=ready)
        say(f"{ref}: removed {ready} and its snapshots (--keep keeps them)")
    return ready
