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

from include.driver_lease import (
    CheckpointInUse,
    DriverLease,
    find_zombie,
    read_holder,
    stop_zombie,
)
from include.runtime.procs import alive
from include.settings import PROJECT_ROOT
from tests.conftest import poll

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from include.driver_lease import DriverLease
    lease = DriverLease({"q": Path(sys.argv[1])}, heartbeat_seconds=0.2)
    lease.acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def holder(tmp_path: Path):
    checkpoint = tmp_path / "checkpoints" / "q"
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
