"""One streaming driver per checkpoint: an exclusive lease with a heartbeat.

Two drivers on one checkpoint both plan batch N, both write ``offsets/N`` and corrupt the
query.  Before it starts its queries, the driver takes a lease on each checkpoint: an
exclusive ``flock`` on ``<checkpoint>/_driver.lease`` (the kernel drops it when the process
dies, even by ``kill -9``) and, inside the file, who holds it and a heartbeat refreshed every
few seconds.  A second launch is refused with a message naming the holder.

The heartbeat tells a live driver from a frozen one: a process that was SIGSTOPped, or an
orphan Airflow no longer tracks, keeps its lock but stops beating.  :func:`find_zombie`
reports such a holder and :func:`stop_zombie` ends it so a new driver can start.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import psutil

log = logging.getLogger(__name__)

LEASE_FILE = "_driver.lease"
HEARTBEAT_SECONDS = 5.0
# A holder whose heartbeat is older than this is frozen (no live driver misses 6 beats).
STALE_AFTER_SECONDS = 30.0


# A probe's lock lasts microseconds; a driver's, its lifetime.  This many tries, this far
# apart, tell the two apart.
PROBE_TRIES = 10
PROBE_WAIT_SECONDS = 0.1


class CheckpointInUse(RuntimeError):
    """Another live driver holds the checkpoint's lease."""


@dataclass(frozen=True)
class Holder:
    """Who holds a checkpoint's lease, as the lease file records it; times in epoch seconds."""

    pid: int
    host: str
    query: str
    started: float
    heartbeat: float

    def age(self, now: float | None = None) -> float:
        """Seconds since the holder's last heartbeat, as of `now` (default: the current time)."""
        return (now or time.time()) - self.heartbeat

    def describe(self) -> str:
        """The holder in words (pid, host, start, heartbeat age), for messages and logs."""
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.started))
        return (
            f"driver pid {self.pid} on {self.host}, started {started} UTC, "
            f"last heartbeat {self.age():.0f} s ago"
        )


def lease_path(checkpoint: Path) -> Path:
    """The lease file of `checkpoint`."""
    return checkpoint / LEASE_FILE


def read_holder(checkpoint: Path) -> Holder | None:
    """Who holds (or last held) the lease, from the file's content; None if never taken."""
    try:
        data = json.loads(lease_path(checkpoint).read_text(encoding="utf-8"))
        return Holder(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None


def is_locked(checkpoint: Path) -> bool:
    """Whether a live process holds the lock (the file's content may be stale)."""
    path = lease_path(checkpoint)
    if not path.exists():
        return False
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _lock(handle, tries: int = PROBE_TRIES) -> bool:
    """Take the lock; a few tries, since a probe (`is_locked`, from the supervisor or a
    monitor) holds it for an instant: only a holder that keeps it refuses the start."""
    for attempt in range(tries):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(PROBE_WAIT_SECONDS)
    return False


def live_holder(checkpoint: Path) -> Holder | None:
    """The driver holding the checkpoint's lease now; None when no live process holds it."""
    return read_holder(checkpoint) if is_locked(checkpoint) else None


class DriverLease:
    """Exclusive leases on a set of checkpoints, held until :meth:`release` or exit."""

    def __init__(self, checkpoints: dict[str, Path], heartbeat_seconds: float = HEARTBEAT_SECONDS):
        self.checkpoints = checkpoints
        self.heartbeat_seconds = heartbeat_seconds
        self._handles: dict[str, IO[str]] = {}
        self._started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take every lease or none; raise CheckpointInUse naming the holder."""
        try:
            for query, checkpoint in self.checkpoints.items():
                self._take(query, checkpoint)
        except BaseException:
            self.release()
            raise
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _take(self, query: str, checkpoint: Path) -> None:
        checkpoint.mkdir(parents=True, exist_ok=True)
        previous = read_holder(checkpoint)
        handle = open(lease_path(checkpoint), "a+", encoding="utf-8")  # held until release
        if not _lock(handle):
            handle.close()
            holder = previous.describe() if previous else "another process"
            raise CheckpointInUse(
                f"checkpoint {checkpoint} of query {query} is in use by {holder}. "
                "Two drivers on one checkpoint would corrupt it: stop that driver first "
                "(`make down`, or let the supervisor stop a frozen one)."
            ) from None
        if previous and previous.pid != os.getpid():
            log.warning(
                "taking over checkpoint %s of query %s: its previous %s ended without releasing it",
                checkpoint,
                query,
                previous.describe(),
            )
        self._handles[query] = handle
        self._write(query, handle)

    def _write(self, query: str, handle) -> None:
        now = time.time()
        holder = Holder(os.getpid(), socket.gethostname(), query, self._started, now)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(asdict(holder)))
        handle.flush()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            for query, handle in list(self._handles.items()):
                try:
                    self._write(query, handle)
                except (OSError, ValueError):
                    log.exception("could not refresh the lease of query %s", query)

    def release(self) -> None:
        """Stop the heartbeat and let go of every lease taken; the lease files are emptied, not
        deleted.  Safe to call again."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_seconds + 1)
        for handle in self._handles.values():
            # Emptied, not deleted: a waiting process could otherwise lock the unlinked file
            # while a third one creates and locks a new one.
            handle.seek(0)
            handle.truncate()
            handle.close()  # closing drops the flock
        self._handles.clear()

    def __enter__(self) -> DriverLease:
        self.acquire()
        return self

    def __exit__(self, *_exc) -> None:
        self.release()


def find_zombie(checkpoint: Path, stale_after: float = STALE_AFTER_SECONDS) -> Holder | None:
    """The holder of a locked lease whose heartbeat stopped: a frozen or orphaned driver."""
    holder = read_holder(checkpoint)
    if holder is None or not is_locked(checkpoint) or holder.age() <= stale_after:
        return None
    return holder


def stop_zombie(holder: Holder, timeout: float = 30.0) -> list[int]:
    """SIGKILL a frozen driver and the JVM that launched it (PySpark's driver is a child of
    spark-submit's JVM); SIGTERM would wait forever on a stopped process.  Returns the pids
    killed.  Only on this host: a remote holder must be stopped where it runs."""
    if holder.host != socket.gethostname():
        raise CheckpointInUse(f"the frozen {holder.describe()} runs on another host; stop it there")
    try:
        driver = psutil.Process(holder.pid)
    except psutil.NoSuchProcess:
        return []
    victims = [driver]
    parent = driver.parent()
    if parent is not None and "java" in parent.name():
        victims.append(parent)
    for proc in victims:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=timeout)
    return [p.pid for p in victims]
