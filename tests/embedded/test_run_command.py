"""The README's run command on the embedded default: SQLite, the filesystem broker, no server."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.fixtures.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_it_runs_the_whole_service_on_the_embedded_default_and_completes_a_demo_saga(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
    }
    env.update(DATA_DIR=str(tmp_path / "data"), PORT=str(port))
    out = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen(
        [str(ROOT / "deploy/run-embedded")],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "runs at" not in (tmp_path / "run.log").read_text():
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.5)
        printed = (tmp_path / "run.log").read_text()
        assert f"http://127.0.0.1:{port}/" in printed
        assert "Log in as 'admin' with password:" in printed

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=10) as answer:
            assert answer.status == 200 and b"Log in" in answer.read()
        demo = subprocess.run(
            [sys.executable, "manage.py", "run_demo_saga", "--timeout", "60"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "succeeded" in demo.stdout
        assert (tmp_path / "data" / "db.sqlite3").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        time.sleep(1)
    # web, worker and beat all stopped with it: nothing is left in its session.
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout
    assert leftovers == ""
