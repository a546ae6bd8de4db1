"""deploy/supervise.py with real processes: one that keeps stopping is started again with a line
saying why, then stops the service (or, if optional, is given up while the rest stays up)."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("supervise", ROOT / "deploy" / "supervise.py")
supervise = importlib.util.module_from_spec(spec)
sys.modules["supervise"] = supervise  # dataclasses look their module up there
spec.loader.exec_module(supervise)


def program(name: str, script: str, tmp_path: Path, **options) -> supervise.Program:
    return supervise.Program(name, [sys.executable, "-c", script], tmp_path / f"{name}.log", **options)


def test_a_process_that_keeps_stopping_stops_the_service_with_a_message_naming_it(tmp_path, capsys):
    steady = program("steady", "import time; time.sleep(120)", tmp_path)
    flaky = program("flaky", "print('cannot open the database', flush=True); raise SystemExit(3)", tmp_path)
    began = time.monotonic()
    assert supervise.Supervisor([steady, flaky]).run_members() == 1
    took = time.monotonic() - began
    said = capsys.readouterr().err
    assert said.count("flaky exited with status 3; its last log line: cannot open the database") == 5
    assert "Starting it again in 1 s" in said and "Starting it again in 8 s" in said
    assert "It stopped 5 times within a minute: stopping the service" in said
    assert 14 < took < 40  # the backoff: 1 + 2 + 4 + 8 s
    assert steady.process.poll() is not None  # the rest was stopped with it


def test_an_optional_process_that_keeps_stopping_is_given_up_and_the_rest_stays_up(tmp_path, capsys):
    steady = program("steady", "import time; time.sleep(120)", tmp_path)
    proxy = program("nginx", "raise SystemExit(1)", tmp_path, optional=True)
    supervisor = supervise.Supervisor([steady, proxy])
    runner = threading.Thread(target=supervisor.run_members)
    runner.start()
    deadline = time.monotonic() + 40
    while not proxy.given_up:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert steady.process.poll() is None
    supervisor.stopping = True
    runner.join(timeout=30)
    assert "nginx exited with status 1" in capsys.readouterr().err
    assert steady.process.poll() is not None


def test_it_starts_again_a_process_that_was_killed(tmp_path, capsys):
    worker = program("worker", "import time; print('ready', flush=True); time.sleep(120)", tmp_path)
    supervisor = supervise.Supervisor([worker])
    runner = threading.Thread(target=supervisor.run_members)
    runner.start()
    try:
        time.sleep(1)
        first = worker.process.pid
        worker.process.kill()
        deadline = time.monotonic() + 10
        while worker.process.pid == first or worker.process.poll() is not None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        supervisor.stopping = True
        runner.join(timeout=30)
    assert (
        "worker killed by SIGKILL; its last log line: ready. Starting it again in 1 s."
        in capsys.readouterr().err
    )
