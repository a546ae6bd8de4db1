"""One instance of the local provider: `python local_instance.py <record.json>`.

Standard library only (it must not start Django). It forks into a session of its own and returns at
once, so that it is nobody's child: the worker that launched it may die without taking it along. The
instance then verifies its image's artifact, boots (a configurable pause), listens on a free loopback
port and answers GET /health. It exits when it is terminated (SIGTERM, or the `.terminated` mark) or
when its record disappears (its folder was removed), so no instance outlives its provider folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
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

    try:
        manifest = _load_artifacts().read_archive(Path(record["archive"]))
    except ValueError as exc:
        print(f"{instance_id}: cannot start from its image: {exc}", flush=True)
        sys.exit(1)
    if manifest.get("image_id") != record["image_id"]:
        print(f"{instance_id}: the artifact is of image {manifest.get('image_id')}", flush=True)
        sys.exit(1)
    keys = list(record.get("authorized_keys", []))
    for user in manifest.get("customizations", {}).get("users", []):
        if user.get("ssh_key"):
            keys.append(user["ssh_key"])

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
        "packages": manifest.get("packages", []),
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
