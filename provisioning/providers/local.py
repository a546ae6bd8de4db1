"""The local provider, the embedded default: real artifacts on disk and instances as real processes.

Everything lives under one folder (settings.LOCAL_PROVIDER_DIR), one sub-folder per region:

    <region>/images/<image id>/         the image: a root folder built from the manifest's
                                        cloud-config (see artifacts.py)
    <region>/images/<image id>.json     the build: when it is ready
    <region>/keys/<name>.json           imported public keys
    <region>/tokens/<token>.json        the instance ids a client token launched (idempotency)
    <region>/instances/<id>.json        what the instance was launched with
    <region>/instances/<id>.disk/       the instance's copy of its image, made when it first starts
    <region>/instances/<id>.pid|.port   written by the running instance
    <region>/instances/<id>.terminated  terminate's mark: the instance exits when it sees it

An instance is `python local_instance.py <record>`: it verifies its image, starts from a copy of it,
listens on a free loopback port and answers GET /health with what its copy carries (files with their
checksums and modes, users and their keys, packages) and its instance and image ids. It
runs in a session of its own, so a worker that dies (SIGKILL) does not take it along, and it exits by
itself once it is terminated or its folder is gone. `stop_running` stops every instance without
terminating it and `start_stopped` starts them again (a worker calls them at shutdown and at start);
`stop_all` terminates every instance of the folder (the tests, after each test).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provisioning.providers import artifacts, cloud_config
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
    openssh_fingerprint,
    parse_public_key,
)

INSTANCE_SCRIPT = Path(__file__).with_name("local_instance.py")


def _setting(name: str, default: Any) -> Any:
    from django.conf import settings

    from provisioning.env import env_float, env_list

    if hasattr(settings, name):
        return getattr(settings, name)
    if isinstance(default, list):
        return env_list(name, default)
    return env_float(name, default)


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:17]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def process_alive(pid: int, marker: str) -> bool:
    """Whether `pid` runs and is the process we started (its command line names `marker`): a pid the
    system gave to somebody else since, or a zombie, is not ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


class LocalProvider(Provider):
    name = "local"
    title = "Local host"
    instance_types = ("small", "medium", "large")
    default_instance_type = "small"

    def __init__(
        self,
        account: dict[str, Any] | None = None,
        *,
        fault: str = "",
        root: Path | str | None = None,
        build_seconds: float | None = None,
        boot_seconds: float | None = None,
        latency: float | None = None,
    ) -> None:
        super().__init__(account, fault=fault)
        from django.conf import settings

        self.root = Path(root or settings.LOCAL_PROVIDER_DIR)
        self.build_seconds = (
            _setting("LOCAL_PROVIDER_BUILD_SECONDS", 2.0) if build_seconds is None else build_seconds
        )
        self.boot_seconds = (
            _setting("LOCAL_PROVIDER_BOOT_SECONDS", 0.5) if boot_seconds is None else boot_seconds
        )
        # Seconds every call takes, as a cloud's API would: lets people (and tests) watch each step.
        self.latency = _setting("LOCAL_PROVIDER_LATENCY", 0.0) if latency is None else latency

    def _call(self, method: str) -> None:
        if self.latency:
            time.sleep(self.latency)
        super()._call(method)

    def regions(self) -> list[str]:
        return list(_setting("LOCAL_PROVIDER_REGIONS", ["local-1", "local-2", "local-3"]))

    def _region(self, region: str) -> Path:
        if region not in self.regions():
            raise ProviderError(f"local has no region {region!r}", retryable=False)
        return self.root / region

    # --- images ----------------------------------------------------------------------------------

    def _image_paths(self, region: str, image_id: str) -> tuple[Path, Path]:
        folder = self._region(region) / "images"
        return folder / image_id, folder / f"{image_id}.json"

    def start_build(self, *, region: str, build_ref: str, name: str, manifest: dict) -> str:
        self._call("start_build")
        image_id = f"limg-{_digest(region, build_ref)}"
        folder, record = self._image_paths(region, image_id)
        if _read_json(record) is not None:
            return image_id  # started before: the same build
        try:
            checksum = artifacts.write_image(
                folder, user_data=cloud_config.user_data(manifest, build_ref=build_ref)
            )
        except (ValueError, OSError) as exc:
            raise ProviderError(f"local: the image cannot be built: {exc}", retryable=False) from exc
        _write_json(
            record,
            {
                "image_id": image_id,
                "name": name,
                "tags": {TAG_BUILD: build_ref},
                "sha256": checksum,
                "started_at": time.time(),
                "ready_at": time.time() + self.build_seconds,
            },
        )
        return image_id

    def describe_build(self, *, region: str, image_id: str) -> BuildStatus:
        self._call("describe_build")
        folder, record = self._image_paths(region, image_id)
        build = _read_json(record)
        if build is None:
            return BuildStatus(BuildState.FAILED, image_id, "the image does not exist (deleted?)")
        if time.time() < build["ready_at"]:
            left = build["ready_at"] - time.time()
            return BuildStatus(BuildState.BUILDING, image_id, f"building, about {left:.0f} s left")
        try:
            artifacts.verify_image(folder)
        except ValueError as exc:
            return BuildStatus(BuildState.FAILED, image_id, str(exc))
        return BuildStatus(BuildState.READY, image_id)

    def delete_image(self, *, region: str, image_id: str) -> None:
        self._call("delete_image")
        folder, record = self._image_paths(region, image_id)
        record.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    def image_exists(self, *, region: str, image_id: str) -> bool:
        return all(p.exists() for p in self._image_paths(region, image_id))

    # --- keys ------------------------------------------------------------------------------------

    def ensure_public_key(self, *, region: str, name: str, public_key: str) -> KeyPair:
        self._call("ensure_public_key")
        parse_public_key(public_key)
        fingerprint = openssh_fingerprint(public_key)
        folder = self._region(region) / "keys"
        with self._lock(folder / ".lock"):
            for path in sorted(folder.glob("*.json")):
                key = _read_json(path) or {}
                if key.get("fingerprint") == fingerprint:
                    return KeyPair(key["name"], fingerprint, imported=False)
            if (folder / f"{name}.json").exists():
                raise ProviderError(f"a different key is imported as {name!r} already", retryable=False)
            _write_json(
                folder / f"{name}.json",
                {"name": name, "fingerprint": fingerprint, "public_key": public_key.strip()},
            )
        return KeyPair(name, fingerprint, imported=True)

    def _key_material(self, region: str, name: str) -> str:
        key = _read_json(self._region(region) / "keys" / f"{name}.json")
        if key is None:
            raise ProviderError(f"there is no key pair {name!r} in {region}", retryable=False)
        return key["public_key"]

    # --- instances -------------------------------------------------------------------------------

    @contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _instances_dir(self, region: str) -> Path:
        return self._region(region) / "instances"

    def check_launch(self, request: LaunchRequest) -> None:
        self._call("check_launch")
        if not self.image_exists(region=request.region, image_id=request.image_id):
            raise ProviderError(f"there is no image {request.image_id} in {request.region}", retryable=False)
        if request.key_name:
            self._key_material(request.region, request.key_name)
        if request.instance_type not in self.instance_types:
            raise ProviderError(f"there is no instance type {request.instance_type!r}", retryable=False)

    def launch_instances(self, request: LaunchRequest) -> list[Instance]:
        self._call("launch_instances")
        region = request.region
        archive, _ = self._image_paths(region, request.image_id)
        if not archive.is_dir():
            raise ProviderError(f"there is no image {request.image_id} in {region}", retryable=False)
        keys = [self._key_material(region, request.key_name)] if request.key_name else []
        tokens = self._region(region) / "tokens"
        token_file = tokens / f"{_digest(request.client_token)}.json"
        # One launch per token at a time; the ids are written before any process starts, so a launch
        # cut short (worker killed) is completed by the next call with the same token, never doubled.
        with self._lock(tokens / f"{_digest(request.client_token)}.lock"):
            planned = _read_json(token_file)
            if planned is None:
                planned = {
                    "client_token": request.client_token,
                    "instance_ids": [
                        f"li-{_digest(region, request.client_token, str(i))}" for i in range(request.count)
                    ],
                }
                _write_json(token_file, planned)
            for instance_id in planned["instance_ids"]:
                self._start(region, instance_id, request, archive, keys)
        return self.describe_instances(region=region, instance_ids=planned["instance_ids"], _internal=True)

    def _start(
        self, region: str, instance_id: str, request: LaunchRequest, archive: Path, keys: list
    ) -> None:
        folder = self._instances_dir(region)
        record = folder / f"{instance_id}.json"
        if (folder / f"{instance_id}.terminated").exists():
            return
        if _read_json(record) is None:
            _write_json(
                record,
                {
                    "id": instance_id,
                    "region": region,
                    "image_id": request.image_id,
                    "image": str(archive),
                    "instance_type": request.instance_type,
                    "key_name": request.key_name,
                    "authorized_keys": keys,
                    "tags": {**request.tags, TAG_TOKEN: request.client_token},
                    "boot_seconds": self.boot_seconds,
                    "launched_at": time.time(),
                },
            )
        self._spawn(folder, instance_id)

    def _spawn(self, folder: Path, instance_id: str) -> None:
        """Start the instance's process from its record, unless it runs already."""
        if self._pid(folder, instance_id) is not None:
            return  # running already
        record = folder / f"{instance_id}.json"
        (folder / f"{instance_id}.port").unlink(missing_ok=True)
        log = open(folder / f"{instance_id}.log", "ab")
        try:
            # The script forks once more and returns at once: the instance is nobody's child here.
            subprocess.run(
                [sys.executable, str(INSTANCE_SCRIPT), str(record)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                check=True,
                timeout=30,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            raise ProviderError(f"instance {instance_id} did not start: {exc}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while self._pid(folder, instance_id) is None and time.monotonic() < deadline:
            time.sleep(0.02)

    @staticmethod
    def _pid(folder: Path, instance_id: str) -> int | None:
        try:
            pid = int((folder / f"{instance_id}.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if process_alive(pid, instance_id) else None

    def _describe(self, region: str, instance_id: str) -> Instance | None:
        folder = self._instances_dir(region)
        record = _read_json(folder / f"{instance_id}.json")
        if record is None:
            return None
        pid = self._pid(folder, instance_id)
        port = None
        if (folder / f"{instance_id}.terminated").exists() and pid is None:
            state = InstanceState.TERMINATED
        elif pid is None:
            state = InstanceState.STOPPED
        else:
            try:
                port = int((folder / f"{instance_id}.port").read_text())
                state = InstanceState.RUNNING
            except (FileNotFoundError, ValueError):
                state = InstanceState.PENDING
        return Instance(
            id=instance_id,
            region=region,
            state=state,
            image_id=record["image_id"],
            instance_type=record["instance_type"],
            key_name=record["key_name"],
            private_ip="127.0.0.1",
            public_ip="127.0.0.1" if port else "",
            dns_name=f"localhost:{port}" if port else "",
            port=port,
            tags=record["tags"],
        )

    def describe_instances(
        self, *, region: str, instance_ids: list[str], _internal: bool = False
    ) -> list[Instance]:
        if not _internal:
            self._call("describe_instances")
        found = [self._describe(region, i) for i in instance_ids]
        return [i for i in found if i is not None]

    def find_instances(self, *, region: str, tags: dict[str, str]) -> list[Instance]:
        self._call("find_instances")
        if TAG_TOKEN in tags:
            # A launch's instances are planned under its token before any starts: a look at them
            # costs what they are, not a scan of every instance of the region.
            planned = _read_json(self._region(region) / "tokens" / f"{_digest(tags[TAG_TOKEN])}.json")
            candidates = sorted(planned["instance_ids"]) if planned else []
        else:
            candidates = [path.stem for path in sorted(self._instances_dir(region).glob("*.json"))]
        found = []
        for instance_id in candidates:
            instance = self._describe(region, instance_id)
            if instance is None or instance.state == InstanceState.TERMINATED:
                continue
            if all(instance.tags.get(k) == v for k, v in tags.items()):
                found.append(instance)
        return found

    def terminate_instances(self, *, region: str, instance_ids: list[str]) -> None:
        self._call("terminate_instances")
        folder = self._instances_dir(region)
        for instance_id in instance_ids:
            if not (folder / f"{instance_id}.json").exists():
                continue
            # The mark first: an instance that has not written its pid yet exits when it sees it.
            (folder / f"{instance_id}.terminated").touch()
            _stop_process(folder, instance_id)
            shutil.rmtree(folder / f"{instance_id}.disk", ignore_errors=True)  # a terminated disk goes

    # --- the whole folder ------------------------------------------------------------------------

    def stop_all(self) -> int:
        """Terminate every instance under the folder, whatever launched it; return how many ran."""
        stopped = 0
        for record in self.root.glob("*/instances/*.json"):
            folder, instance_id = record.parent, record.stem
            (folder / f"{instance_id}.terminated").touch()
            stopped += _stop_process(folder, instance_id)
        return stopped

    def stop_running(self) -> list[str]:
        """Stop every running instance of the folder without terminating it, as a host that shuts
        down stops its machines: `start_stopped` starts them again. Answers the ids it stopped."""
        stopped = []
        for record in self.root.glob("*/instances/*.json"):
            if _stop_process(record.parent, record.stem):
                stopped.append(record.stem)
        return stopped

    def start_stopped(self) -> list[str]:
        """Start every instance of the folder that was not terminated and does not run (the host is
        back). Several workers may start at once: the instance's lock lets one of them start it."""
        started = []
        for record in sorted(self.root.glob("*/instances/*.json")):
            folder, instance_id = record.parent, record.stem
            if (folder / f"{instance_id}.terminated").exists() or self._pid(folder, instance_id) is not None:
                continue
            with self._lock(folder / f"{instance_id}.lock"):
                if self._pid(folder, instance_id) is None:
                    try:
                        self._spawn(folder, instance_id)
                    except ProviderError:
                        continue  # described as stopped; the next start tries again
                    started.append((folder, instance_id))
        # Answer once they serve (or could not), so that what is then written down is their address.
        deadline = time.monotonic() + 15 + self.boot_seconds
        for folder, instance_id in started:
            while time.monotonic() < deadline and not (folder / f"{instance_id}.port").exists():
                if self._pid(folder, instance_id) is None:
                    break
                time.sleep(0.05)
        return [instance_id for _, instance_id in started]

    def live_processes(self) -> list[int]:
        """Pids of instance processes of this folder that still run."""
        pids = []
        for record in self.root.glob("*/instances/*.json"):
            pid = self._pid(record.parent, record.stem)
            if pid is not None:
                pids.append(pid)
        return pids


def _stop_process(folder: Path, instance_id: str, timeout: float = 5.0) -> int:
    """SIGTERM the instance's process group, SIGKILL it if it does not go. Returns 1 if it ran."""
    pid = LocalProvider._pid(folder, instance_id)
    if pid is None:
        return 0
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return 1
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not process_alive(pid, instance_id):
                return 1
            time.sleep(0.02)
    return 1
