"""The campaign's faults, and how it tells that the platform recovered from one.

The faults: SIGKILL of the streaming driver (its Python process and its JVM), SIGSTOP of
the driver, a Kafka broker restart, an Airflow scheduler restart, in the numbers a `Plan`
asks for, shuffled.  Recovery is left to the platform: the supervisor DAG, on its own
schedule, finds the driver dead or frozen and starts a new streaming run.  The campaign
only watches: the platform has recovered when every query has a live driver again and has
committed a batch after the fault.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from include.runtime.airflow import AirflowComponent
from include.runtime.kafka import Kafka
from include.settings import Settings
from include.streaming import checkpoints
from include.streaming.lease import Holder, live_holder

KINDS = {
    "kill": "SIGKILL of the streaming driver (Python and JVM)",
    "freeze": "SIGSTOP of the streaming driver",
    "broker": "Kafka broker restart",
    "scheduler": "Airflow scheduler restart",
}
RECOVERY_TIMEOUT = 900.0


@dataclass
class Plan:
    """How many faults of each kind the campaign injects."""

    kills: int = 20
    freezes: int = 3
    broker_restarts: int = 2
    scheduler_restarts: int = 2

    def faults(self, rng: random.Random) -> list[str]:
        """The planned faults' kinds, in a shuffled order."""
        faults = (
            ["kill"] * self.kills
            + ["freeze"] * self.freezes
            + ["broker"] * self.broker_restarts
            + ["scheduler"] * self.scheduler_restarts
        )
        rng.shuffle(faults)
        return faults


def driver(settings: Settings, timeout: float = 300.0) -> Holder:
    """The live driver holding the checkpoints (waits for one to start)."""
    checkpoint = settings.paths.pipeline_checkpoint
    deadline = time.monotonic() + timeout
    while (holder := live_holder(checkpoint)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no streaming driver holds {checkpoint} after {timeout:.0f} s")
        time.sleep(1)
    return holder


def kill_driver(settings: Settings) -> tuple[str, int | None]:
    holder = driver(settings)
    python = psutil.Process(holder.pid)
    procs = [python]
    jvm = python.parent()
    if jvm is not None and "java" in jvm.name():
        procs.append(jvm)
    for proc in procs:
        proc.kill()
    return "SIGKILL to " + " and ".join(f"pid {p.pid} ({p.name()})" for p in procs), holder.pid


def freeze_driver(settings: Settings) -> tuple[str, int | None]:
    holder = driver(settings)
    os.kill(holder.pid, signal.SIGSTOP)
    return f"SIGSTOP to driver pid {holder.pid}", holder.pid


def restart_broker(settings: Settings) -> tuple[str, int | None]:
    broker = Kafka(settings)
    stopped = broker.stop()
    broker.start()
    return f"Kafka broker {stopped}, started again (pid {broker.pid()})", None


def restart_scheduler(settings: Settings) -> tuple[str, int | None]:
    scheduler = AirflowComponent("scheduler", settings)
    stopped = scheduler.stop()
    scheduler.start()
    return f"Airflow scheduler {stopped} (with its task processes), started again", None


# Each injects its fault and says what it did; the driver faults name the pid they hit.
INJECT: dict[str, Callable[[Settings], tuple[str, int | None]]] = {
    "kill": kill_driver,
    "freeze": freeze_driver,
    "broker": restart_broker,
    "scheduler": restart_scheduler,
}


def recovered_since(settings: Settings, since: float, faulted: int | None = None) -> bool:
    """The pipeline has a driver (not the `faulted` pid) that beat after `since` and has
    committed a batch itself: a frozen driver looks alive until its heartbeat is old, and
    woken to stop, it commits the batch it was in before the new one starts."""
    path = settings.paths.pipeline_checkpoint
    holder = live_holder(path)
    if holder is None or holder.pid == faulted or holder.heartbeat < since:
        return False
    last = checkpoints.inspect(path).last_committed
    try:
        committed = (path / "commits" / str(last)).stat().st_mtime if last is not None else 0
    except OSError:
        return False
    return committed >= max(since, holder.started)


def wait_recovered(
    settings: Settings, since: float, faulted: int | None = None, timeout: float = RECOVERY_TIMEOUT
) -> float:
    """Seconds from `since` (wall clock) until the platform recovered; inf if it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if recovered_since(settings, since, faulted):
            return time.time() - since
        time.sleep(1)
    return math.inf
