"""One driver per checkpoint: real processes hold, lose and freeze the lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from include.runtime.procs import alive
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.streaming.lease import (
    CheckpointInUse,
    DriverLease,
    find_zombie,
    read_holder,
    stop_zombie,
)
from include.streaming.supervisor import ENDED, wait_for_streaming_to_end
from tests.conftest import poll

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from include.streaming.lease import DriverLease
    lease = DriverLease({"q": Path(sys.argv[1])}, heartbeat_seconds=0.2)
    lease.acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path: Path):
    checkpoint = tmp_path / "checkpoints" / "pipeline"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(checkpoint)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc, checkpoint
    proc.kill()
    proc.wait(10)


def test_a_second_driver_is_refused_naming_the_first(holder) -> None:
    proc, checkpoint = holder
    with pytest.raises(CheckpointInUse, match=rf"in use by driver pid {proc.pid} on "):
        DriverLease({"q": checkpoint}).acquire()
    assert read_holder(checkpoint).pid == proc.pid  # the refused attempt changed nothing


def test_all_or_nothing_when_one_of_several_is_taken(holder, tmp_path: Path) -> None:
    _, taken = holder
    free = tmp_path / "checkpoints" / "free"
    with pytest.raises(CheckpointInUse):
        DriverLease({"free": free, "q": taken}).acquire()
    with DriverLease({"free": free}):  # the first lease was given back
        assert read_holder(free).pid == os.getpid()


def test_kill_9_frees_the_checkpoint(holder) -> None:
    proc, checkpoint = holder
    proc.kill()
    proc.wait(10)
    with DriverLease({"q": checkpoint}):
        assert read_holder(checkpoint).pid == os.getpid()
    assert read_holder(checkpoint) is None  # released: nobody holds it


def test_a_live_driver_is_not_a_zombie(holder) -> None:
    _, checkpoint = holder
    time.sleep(1)
    assert find_zombie(checkpoint, stale_after=0.8) is None


def test_a_frozen_driver_is_found_and_stopped(holder) -> None:
    proc, checkpoint = holder
    os.kill(proc.pid, signal.SIGSTOP)
    zombie = poll(
        lambda: find_zombie(checkpoint, stale_after=0.8),
        lambda found: found is not None,
        "the frozen driver to be reported",
        timeout=10,
        interval=0.2,
    )
    assert zombie.pid == proc.pid
    assert proc.pid in stop_zombie(zombie)
    proc.wait(10)
    assert not alive(proc.pid)
    with DriverLease({"q": checkpoint}):
        assert find_zombie(checkpoint, stale_after=0.8) is None


# After a stop, the supervisor and the scheduled restart wait for the streaming run to end
# before starting another; whichever starts one first wins, the other must not wait for it.


def settings_for(monkeypatch, tmp_path: Path) -> Settings:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))  # checkpoints/pipeline is the holder's
    return Settings()


def test_a_driver_started_by_the_other_dag_ends_the_wait_at_once(holder, monkeypatch, tmp_path):
    proc, _ = holder
    settings = settings_for(monkeypatch, tmp_path)
    started = time.monotonic()

    outcome = wait_for_streaming_to_end(
        settings, ["q"], lambda states: 1, stopped={proc.pid + 1}, timeout=60, interval=0.1
    )

    assert outcome.startswith(f"driver pid {proc.pid} ")
    assert "already holds the checkpoints" in outcome
    assert time.monotonic() - started < 30, "it must not wait for the timeout"


def test_the_stopped_driver_still_holding_does_not_count(holder, monkeypatch, tmp_path):
    proc, _ = holder
    settings = settings_for(monkeypatch, tmp_path)
    active = iter([1, 1, 1, 0])

    outcome = wait_for_streaming_to_end(
        settings, ["q"], lambda states: next(active), {proc.pid}, timeout=60, interval=0.1
    )

    assert outcome == ENDED


def test_a_run_that_never_ends_is_reported_after_the_timeout(monkeypatch, tmp_path):
    settings = settings_for(monkeypatch, tmp_path)

    outcome = wait_for_streaming_to_end(
        settings, ["q"], lambda states: 2, set(), timeout=0.3, interval=0.1
    )

    assert outcome.startswith("the streaming DAG still has 2 active run(s) 0 s after")


def test_a_supervisor_airflow_is_stopping_starts_no_new_run(monkeypatch, tmp_path):
    """A stopping scheduler still launches the run a supervisor triggers, then waits for it
    until its stop times out: a supervisor told to stop (SIGTERM) while it waits for the
    stopped driver's run to end does not go on to start one, even once the run has ended."""
    settings = settings_for(monkeypatch, tmp_path)
    active = iter([1, 1, 0])
    told: list[bool] = []

    def stopping() -> bool:
        told.append(len(told) >= 2)  # SIGTERM arrives during the wait
        return told[-1]

    outcome = wait_for_streaming_to_end(
        settings, ["q"], lambda states: next(active), set(), 60, 0.01, stopping
    )

    assert outcome != ENDED and "Airflow is stopping this task" in outcome
    assert next(active) == 0, "it stopped looking once told, before the run ended"


def test_a_probe_of_the_lock_does_not_refuse_a_starting_driver(tmp_path: Path) -> None:
    """The supervisor and monitors probe the lock by taking it for an instant; a driver
    starting at that instant must not be refused as if another driver held it."""
    import fcntl
    import threading

    checkpoint = tmp_path / "q"
    checkpoint.mkdir()
    probe = open(checkpoint / "_driver.lease", "a+")
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    threading.Timer(0.3, lambda: fcntl.flock(probe, fcntl.LOCK_UN)).start()
    lease = DriverLease({"q": checkpoint})
    lease.acquire()  # would raise CheckpointInUse on the first try
    try:
        assert read_holder(checkpoint).pid == os.getpid()
    finally:
        lease.release()
        probe.close()
