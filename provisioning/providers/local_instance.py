"""One instance of the local provider: `python local_instance.py <record.json>`.

Standard library only (it must not start Django). It forks into a session of its own and returns at
once, so that it is nobody's child: the worker that launched it may die without taking it along. The
instance then verifies its image and starts from a copy of it (`<id>.disk`, made once: a restart keeps
it), boots (a configurable pause), listens on a free loopback port and answers GET /health with what
its disk carries. It exits when it is terminated (SIGTERM, or the `.terminated` mark) or when its
record disappears (its folder was removed), so no instance outlives its provider folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _load_artifacts():
    spec = importlib.util.spec_from_file_location("_artifacts", Path(__file__).with_name("artifacts.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(record_path: Path) -> None:
    if os.fork():
        os._exit(0)  # the launcher returns; the instance goes on in its own session
    os.setsid()
    record = json.loads(record_path.read_text())
    folder, instance_id = record_path.parent, record["id"]
    terminated = folder / f"{instance_id}.terminated"
    _write(folder / f"{instance_id}.pid", str(os.getpid()))

    def gone() -> bool:
        return terminated.exists() or not record_path.exists()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    artifacts = _load_artifacts()
    disk = folder / f"{instance_id}.disk"
    try:
        if not disk.is_dir():
            # A machine starts from a copy of its image, made once: a restart keeps its disk.
            image = Path(record.get("image") or record.get("archive", ""))
            if image.name != record["image_id"]:
                raise ValueError(f"{image.name} is not the image {record['image_id']}")
            artifacts.verify_image(image)
            tmp = folder / f".{instance_id}.disk.{os.getpid()}"
            shutil.copytree(image, tmp, symlinks=True)
            os.replace(tmp, disk)
        carried = artifacts.describe_root(disk / "root")
    except (ValueError, OSError) as exc:
        print(f"{instance_id}: cannot start from its image: {exc}", flush=True)
        sys.exit(1)
    keys = list(record.get("authorized_keys", []))
    for user in carried["users"]:
        keys.extend(k for k in user["authorized_keys"] if k not in keys)

    boot_until = time.monotonic() + float(record.get("boot_seconds", 0))
    while time.monotonic() < boot_until:
        if stop.is_set() or gone():
            sys.exit(0)
        time.sleep(0.05)

    health = {
        "status": "ok",
        "instance_id": instance_id,
        "image_id": record["image_id"],
        "region": record["region"],
        "instance_type": record["instance_type"],
        "authorized_keys": keys,
        **carried,
        "started_at": time.time(),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.rstrip("/") != "/health":
                self.send_error(404)
                return
            body = json.dumps(health).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    _write(folder / f"{instance_id}.port", str(server.server_address[1]))
    print(f"{instance_id}: serving on 127.0.0.1:{server.server_address[1]}", flush=True)
    while not stop.wait(0.2):
        if gone():
            break
    server.shutdown()
    server.server_close()
    (folder / f"{instance_id}.port").unlink(missing_ok=True)
    print(f"{instance_id}: stopped", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
