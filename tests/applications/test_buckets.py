"""The bucket adapters alone (no database, no worker): S3 at the moto server, and local folders."""

from __future__ import annotations

import time
import urllib.request

import pytest

from provisioning.providers.buckets import (
    AwsBuckets,
    BucketError,
    LocalBuckets,
    _server_alive,
    bucket_name_errors,
)

TAGS = {"provisioning:application-request": "r1"}


def test_bucket_names_follow_the_strictest_provider():
    assert bucket_name_errors("shop-web-0123456789ab") == []
    assert bucket_name_errors("ab")
    assert bucket_name_errors("a" * 64)
    assert bucket_name_errors("Shop")
    assert bucket_name_errors("shop--web")
    assert bucket_name_errors("xn--shop")
    assert bucket_name_errors("-shop")


def test_aws_creates_in_the_region_serves_the_index_and_deletes_everything(aws_endpoint):
    aws = AwsBuckets()
    aws.create_bucket(region="ap-southeast-2", name="adapter-test-1", tags=TAGS)
    aws.create_bucket(region="ap-southeast-2", name="adapter-test-1", tags=TAGS)  # again: no error
    address = aws.put_index(region="ap-southeast-2", name="adapter-test-1", html="<p>hi</p>")
    info = aws.describe_bucket(region="ap-southeast-2", name="adapter-test-1")
    assert info.region == "ap-southeast-2" and info.has_index and info.tags == TAGS
    with urllib.request.urlopen(address, timeout=5) as page:
        assert page.read() == b"<p>hi</p>"
    with pytest.raises(BucketError, match="taken by somebody else"):
        aws.create_bucket(
            region="ap-southeast-2", name="adapter-test-1", tags={"provisioning:application-request": "r2"}
        )
    aws.delete_bucket(region="ap-southeast-2", name="adapter-test-1")
    aws.delete_bucket(region="ap-southeast-2", name="adapter-test-1")  # gone already: no error
    assert aws.describe_bucket(region="ap-southeast-2", name="adapter-test-1") is None


def test_an_injected_fault_fails_every_call_of_that_method(aws_endpoint):
    aws = AwsBuckets(fault="put_index")
    aws.create_bucket(region="us-east-1", name="adapter-test-2", tags=TAGS)
    with pytest.raises(BucketError, match="injected on purpose"):
        aws.put_index(region="us-east-1", name="adapter-test-2", html="x")
    aws.delete_bucket(region="us-east-1", name="adapter-test-2")


def test_local_serves_the_folder_over_http_until_the_bucket_is_deleted(tmp_path):
    local = LocalBuckets(root=tmp_path)
    local.create_bucket(region="local-1", name="adapter-test-3", tags=TAGS)
    address = local.put_index(region="local-1", name="adapter-test-3", html="<p>local</p>")
    with urllib.request.urlopen(address, timeout=5) as page:
        assert page.read() == b"<p>local</p>"
    folder = tmp_path / "local-1" / "buckets" / "adapter-test-3"
    pid = int((folder / "server.pid").read_text())
    assert _server_alive(pid, folder)
    with pytest.raises(BucketError, match="taken by somebody else"):
        local.create_bucket(
            region="local-1", name="adapter-test-3", tags={"provisioning:application-request": "r2"}
        )
    with pytest.raises(BucketError, match="no region"):
        local.create_bucket(region="mars-1", name="adapter-test-3", tags=TAGS)

    local.delete_bucket(region="local-1", name="adapter-test-3")
    assert not folder.exists()
    deadline = time.monotonic() + 5
    while _server_alive(pid, folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _server_alive(pid, folder)
    assert local.describe_bucket(region="local-1", name="adapter-test-3") is None
