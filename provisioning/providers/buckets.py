"""Storage buckets with an index page: plain adapters over S3 and over the local host (no Django models,
no Celery), for application requests.

`aws` talks to S3 through boto3 at `settings.AWS_ENDPOINT_URL` when it is set (a moto server in the
tests). `local` keeps a bucket as a real folder under `settings.LOCAL_PROVIDER_DIR`:

    <region>/buckets/<name>/bucket.json     the bucket's record (its tags): it exists while this does
    <region>/buckets/<name>/objects/        the objects, served over HTTP on loopback
    <region>/buckets/<name>/server.pid|port written by the bucket's HTTP server

The server is `python buckets.py serve <bucket folder>` (standard library only): it detaches into a
session of its own, so a worker that dies does not take it along, and it exits by itself once the
bucket's record is gone, so no server outlives its bucket.

Every call is safe to repeat: creating a bucket this request already created is no error, deleting a
bucket that is gone is no error. A bucket carries the tags it was created with, so that a name held
by somebody else is refused instead of being taken over.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET_PROVIDERS = ("aws", "local")
# Provider calls a request may ask to fail on every attempt (fault injection, for tests and drills).
FAULTS = ("create_bucket", "put_index", "describe_bucket")
TAG_REQUEST = "provisioning:application-request"
INDEX = "index.html"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")


class BucketError(Exception):
    """The provider refused or failed a call. `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class BucketInfo:
    name: str
    region: str
    address: str  # where the index page is served
    tags: dict[str, str]
    has_index: bool


def bucket_name_errors(name: str) -> list[str]:
    """Why `name` is no valid bucket name on every provider (S3's rules are the strictest; the local
    provider uses the name as a folder). Empty: valid."""
    errors = []
    if not 3 <= len(name) <= 63:
        errors.append(f"'{name}' is {len(name)} characters long; a bucket name takes 3 to 63.")
    if not _NAME.match(name):
        errors.append(
            f"'{name}' may hold only lowercase letters, digits and hyphens, beginning and ending with a "
            "letter or digit."
        )
    if "--" in name:
        errors.append(f"'{name}' holds two hyphens in a row.")
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        errors.append(f"'{name}' uses a prefix or suffix S3 reserves.")
    return errors


def _setting(name: str, default: Any) -> Any:
    from django.conf import settings

    from provisioning.env import env_list

    if hasattr(settings, name):
        return getattr(settings, name)
    return env_list(name, default)


class BucketAdapter(ABC):
    name: str = ""

    def __init__(self, *, profile: str = "", fault: str = "") -> None:
        self.profile = profile
        # The name of one method that fails on every call; empty: none.
        self.fault = fault

    def _call(self, method: str) -> None:
        if self.fault and self.fault == method:
            raise BucketError(f"{self.name}: {method} failed (a fault injected on purpose)")

    @abstractmethod
    def regions(self) -> list[str]:
        """Every region buckets can be created in."""

    def check_region(self, region: str) -> None:
        if region not in self.regions():
            raise BucketError(f"{self.name} has no region '{region}'", retryable=False)

    @abstractmethod
    def create_bucket(self, *, region: str, name: str, tags: dict[str, str]) -> None:
        """Create the bucket in `region`, or find the one an earlier call with the same tags created."""

    @abstractmethod
    def put_index(self, *, region: str, name: str, html: str) -> str:
        """Store the index page; return its address."""

    @abstractmethod
    def describe_bucket(self, *, region: str, name: str) -> BucketInfo | None:
        """The bucket as it is now, or None when there is none."""

    @abstractmethod
    def delete_bucket(self, *, region: str, name: str) -> None:
        """Remove the bucket and everything in it; a bucket that is gone already is no error."""


def _check_owner(name: str, found: dict[str, str], wanted: dict[str, str]) -> None:
    if found.get(TAG_REQUEST) != wanted.get(TAG_REQUEST):
        raise BucketError(f"the bucket name '{name}' is taken by somebody else", retryable=False)


# --- AWS -----------------------------------------------------------------------------------------


class AwsBuckets(BucketAdapter):
    name = "aws"
    # Errors that no retry mends.
    PERMANENT = {"AccessDenied", "InvalidBucketName", "InvalidLocationConstraint", "BucketAlreadyExists"}

    def regions(self) -> list[str]:
        import boto3

        return boto3.session.Session().get_available_regions("s3")

    def _endpoint(self) -> str | None:
        from django.conf import settings

        return getattr(settings, "AWS_ENDPOINT_URL", None) or None

    def s3(self, region: str):
        import boto3
        from botocore.config import Config

        # A profile the worker's machine knows acts as that profile; any other is a label (recorded on
        # the request and the bucket's tags) and boto3's own credential chain applies.
        known = boto3.session.Session().available_profiles
        session = boto3.session.Session(
            profile_name=self.profile if self.profile in known else None, region_name=region
        )
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30)
        return session.client("s3", endpoint_url=self._endpoint(), config=config)

    def _error(self, exc: Exception, what: str) -> BucketError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", str(exc))
            return BucketError(f"aws: {what}: {code}: {message}", retryable=code not in self.PERMANENT)
        return BucketError(f"aws: {what}: {exc}")

    def address(self, region: str, name: str) -> str:
        endpoint = self._endpoint()
        if endpoint:
            return f"{endpoint.rstrip('/')}/{name}/{INDEX}"
        return f"https://{name}.s3.{region}.amazonaws.com/{INDEX}"

    def _tags(self, s3, name: str) -> dict[str, str]:
        from botocore.exceptions import ClientError

        try:
            tags = s3.get_bucket_tagging(Bucket=name)["TagSet"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchTagSet":
                return {}
            raise
        return {t["Key"]: t["Value"] for t in tags}

    def create_bucket(self, *, region: str, name: str, tags: dict[str, str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._call("create_bucket")
        s3 = self.s3(region)
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":  # S3 refuses a location constraint naming its default region
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise self._error(exc, f"create bucket {name}") from exc
            # Ours already: an earlier attempt created it, or another request of ours holds the name.
            try:
                found = self._tags(s3, name)
            except (ClientError, BotoCoreError) as exc2:
                raise self._error(exc2, f"read the tags of bucket {name}") from exc2
            if found:
                _check_owner(name, found, tags)
        except BotoCoreError as exc:
            raise self._error(exc, f"create bucket {name}") from exc
        try:
            s3.put_bucket_tagging(
                Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
            )
            s3.put_bucket_website(Bucket=name, WebsiteConfiguration={"IndexDocument": {"Suffix": INDEX}})
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"configure bucket {name}") from exc

    def put_index(self, *, region: str, name: str, html: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        self._call("put_index")
        s3 = self.s3(region)
        # The index page is the bucket's public face: readable by anybody, and nothing else is.
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicIndexPage",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{name}/{INDEX}",
                }
            ],
        }
        try:
            s3.put_object(Bucket=name, Key=INDEX, Body=html.encode(), ContentType="text/html; charset=utf-8")
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": False,
                    "RestrictPublicBuckets": False,
                },
            )
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"store {INDEX} in bucket {name}") from exc
        return self.address(region, name)

    def describe_bucket(self, *, region: str, name: str) -> BucketInfo | None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._call("describe_bucket")
        s3 = self.s3(region)
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                return None
            raise self._error(exc, f"look at bucket {name}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"look at bucket {name}") from exc
        try:
            location = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
            tags = self._tags(s3, name)
            s3.head_object(Bucket=name, Key=INDEX)
            has_index = True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise self._error(exc, f"look at bucket {name}") from exc
            has_index = False
        except BotoCoreError as exc:
            raise self._error(exc, f"look at bucket {name}") from exc
        return BucketInfo(name, location, self.address(location, name), tags, has_index)

    def delete_bucket(self, *, region: str, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = self.s3(region)
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=name)
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
            s3.delete_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return
            raise self._error(exc, f"delete bucket {name}") from exc
        except BotoCoreError as exc:
            raise self._error(exc, f"delete bucket {name}") from exc


# --- Local ---------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _server_alive(pid: int, folder: Path) -> bool:
    """Whether `pid` runs and is this bucket's server (a pid reused by somebody else is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X") and str(folder) in cmdline


class LocalBuckets(BucketAdapter):
    name = "local"

    def __init__(self, *, profile: str = "", fault: str = "", root: Path | str | None = None) -> None:
        super().__init__(profile=profile, fault=fault)
        if root is None:
            from django.conf import settings

            root = settings.LOCAL_PROVIDER_DIR
        self.root = Path(root)

    def regions(self) -> list[str]:
        # The same regions as the local provider's instances and images.
        return list(_setting("LOCAL_PROVIDER_REGIONS", ["local-1", "local-2", "local-3"]))

    def folder(self, region: str, name: str) -> Path:
        self.check_region(region)
        if bucket_name_errors(name):
            raise BucketError(f"local: '{name}' is no valid bucket name", retryable=False)
        return self.root / region / "buckets" / name

    def create_bucket(self, *, region: str, name: str, tags: dict[str, str]) -> None:
        self._call("create_bucket")
        folder = self.folder(region, name)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()  # atomic: of two requests racing for one name, exactly one gets it
        except FileExistsError:
            # A folder without a record is an earlier attempt that died between the two writes: names
            # carry the request's id, so nobody else races for it.
            record = self._record(folder)
            if record is not None:
                _check_owner(name, record.get("tags", {}), tags)
        (folder / "objects").mkdir(exist_ok=True)
        _write(folder / "bucket.json", json.dumps({"name": name, "region": region, "tags": tags}))
        self.ensure_served(region, name)

    def _record(self, folder: Path) -> dict | None:
        try:
            return json.loads((folder / "bucket.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def ensure_served(self, region: str, name: str, timeout: float = 10.0) -> int:
        """The port of the bucket's HTTP server, started if it does not run."""
        folder = self.folder(region, name)
        port = self._port(folder)
        if port:
            return port
        for stale in ("server.pid", "server.port"):
            (folder / stale).unlink(missing_ok=True)
        log = open(folder / "server.log", "ab")
        try:
            # The script forks and returns at once; waiting for it leaves no zombie in the worker.
            subprocess.run(
                [sys.executable, __file__, "serve", str(folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                check=True,
                timeout=timeout,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self._port(folder)
            if port:
                return port
            time.sleep(0.05)
        raise BucketError(f"local: the HTTP server of bucket {name} did not start")

    def _port(self, folder: Path) -> int | None:
        try:
            pid = int((folder / "server.pid").read_text())
            port = int((folder / "server.port").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return port if _server_alive(pid, folder) else None

    def address(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/{INDEX}"

    def put_index(self, *, region: str, name: str, html: str) -> str:
        self._call("put_index")
        folder = self.folder(region, name)
        if self._record(folder) is None:
            raise BucketError(f"local: there is no bucket {name} in {region}")
        _write(folder / "objects" / INDEX, html)
        return self.address(self.ensure_served(region, name))

    def describe_bucket(self, *, region: str, name: str) -> BucketInfo | None:
        self._call("describe_bucket")
        folder = self.folder(region, name)
        record = self._record(folder)
        if record is None:
            return None
        port = self.ensure_served(region, name)
        has_index = (folder / "objects" / INDEX).exists()
        return BucketInfo(name, region, self.address(port), record.get("tags", {}), has_index)

    def delete_bucket(self, *, region: str, name: str) -> None:
        folder = self.folder(region, name)
        # The record goes first: the server sees it gone and exits; then we make sure it did.
        (folder / "bucket.json").unlink(missing_ok=True)
        try:
            pid = int((folder / "server.pid").read_text())
        except (FileNotFoundError, ValueError):
            pid = 0
        if pid and _server_alive(pid, folder):
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            raise BucketError(f"local: bucket {name} could not be removed")


def get_bucket_adapter(provider: str, *, profile: str = "", fault: str = "") -> BucketAdapter:
    if provider == "aws":
        return AwsBuckets(profile=profile, fault=fault)
    if provider == "local":
        return LocalBuckets(profile=profile, fault=fault)
    raise LookupError(f"there is no bucket provider {provider!r}: one of {', '.join(BUCKET_PROVIDERS)}")


# --- The local bucket's HTTP server (runs as a script, without Django) ------------------------------


def _serve(folder: Path) -> None:
    import functools
    import signal
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    if os.fork():
        os._exit(0)  # the caller returns; the server goes on in its own session
    os.setsid()

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Handler, directory=str(folder / "objects"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    _write(folder / "server.pid", str(os.getpid()))
    _write(folder / "server.port", str(server.server_address[1]))

    def watch() -> None:
        while (folder / "bucket.json").exists():
            time.sleep(0.3)
        server.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    threading.Thread(target=watch, daemon=True).start()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        _serve(Path(sys.argv[2]).resolve())
    else:
        sys.exit("usage: buckets.py serve <bucket folder>")
