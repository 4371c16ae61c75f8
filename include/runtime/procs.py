"""Managed background processes: PID files, process groups, ports, and waiting with a reason.

Each service runs in its own session (process group) with an environment marker, so `down`
can end the service *and everything it spawned* (Airflow task processes, spark-submit, the
Spark driver JVM), even when a child re-parented itself.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from include.settings.base import STATE_UMASK

# Every process the platform starts carries this variable; its value is the state dir.
MARKER_ENV = "ECOM_PLATFORM_STATE"


AUTOSTART_ENV = "ECOM_AUTOSTART"


def autostart_wanted() -> bool:
    """Whether `make up` (and compose's pipeline-init) start the pipeline's runs: yes unless
    ``ECOM_AUTOSTART`` is 0, false or no."""
    return os.environ.get(AUTOSTART_ENV, "1").lower() not in ("0", "false", "no")


class PlatformError(RuntimeError):
    """A problem the user can fix; the message says how. The CLI prints it and exits 2."""


@dataclass(frozen=True)
class PidFile:
    """The file that holds a service's process id."""

    path: Path

    def read(self) -> int | None:
        """The PID written, or None when the file is missing or holds no number."""
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def write(self, pid: int) -> None:
        """Write `pid`, making the folder if needed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def remove(self) -> None:
        """Delete the file, if it is there."""
        self.path.unlink(missing_ok=True)


def alive(pid: int | None) -> bool:
    """Whether `pid` is a running process (a zombie is not; neither is None or 0)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def port_owner(host: str, port: int) -> str | None:
    """Who listens on host:port, in words, or None when the port is free to bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return None
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            try:
                proc = psutil.Process(conn.pid) if conn.pid else None
                return f"pid {conn.pid} ({' '.join(proc.cmdline()[:4])})" if proc else "a process"
            except psutil.Error:
                return f"pid {conn.pid}"
    return "another process"


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether host:port accepts a TCP connection within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float,
    interval: float = 0.5,
    failed: Callable[[], str | None] | None = None,
) -> None:
    """Poll `condition`; raise PlatformError naming `what` on timeout or when `failed` says so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if failed and (reason := failed()):
            raise PlatformError(f"{what}: {reason}")
        time.sleep(interval)
    raise PlatformError(f"timed out after {timeout:.0f}s waiting for {what}")


def spawn(
    argv: Sequence[str],
    log_file: Path,
    env: dict[str, str],
    cwd: Path,
    marker: str,
    **popen_options: Any,
) -> subprocess.Popen:
    """Start argv detached in a new session, stdout+stderr appended to log_file, with the
    state dir's umask whoever starts it (a scheduler restarted from a shell keeps the
    files its tasks write as private as `make up`'s).

    `popen_options` go to Popen as they are (for instance user/group to drop root)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**env, MARKER_ENV: marker}
    popen_options.setdefault("umask", STATE_UMASK)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            **popen_options,
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for throw-away brokers in tests, benchmarks)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def stop_tree(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERM every process of pid's session, then SIGKILL after timeout.

    The session, not the process group: Airflow's LocalExecutor puts each task supervisor in
    a process group of its own (and setproctitle wipes its environment, so the marker is
    gone too), but it stays in the scheduler's session.  Returns True if it had to kill.
    """
    try:
        sid = os.getsid(pid)
    except ProcessLookupError:
        return False
    procs = session_members(sid)
    _signal_all(procs, signal.SIGTERM)
    still = wait_ended(procs, timeout)
    if still:
        _signal_all(still, signal.SIGKILL)
        wait_ended(still, 10)
        return True
    return False


def wait_ended(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited; returns those still running after `timeout`.

    A process that exited but was not reaped (a zombie) has ended: its parent may be a
    process that never waits for it, such as the test or the fault campaign that restarted
    a service, and waiting for the zombie to go would only wait out the timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        # Reaps the ones that are our own children; the others' zombies stay listed.
        _, alive = psutil.wait_procs(procs, timeout=0.2)
        procs = [p for p in alive if _running(p)]
        if not procs or time.monotonic() >= deadline:
            return procs


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_members(sid: int) -> list[psutil.Process]:
    """Every process in session `sid`; a process whose session cannot be read is left out."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def marked_processes(marker: str) -> list[psutil.Process]:
    """Every live process started by the platform whose state dir is `marker`."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(MARKER_ENV) == marker:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def kill_marked(marker: str, timeout: float = 20.0) -> list[str]:
    """End leftovers (re-parented children); return a description of each one ended."""
    procs = marked_processes(marker)
    described = []
    for proc in procs:
        try:
            described.append(f"pid {proc.pid} {' '.join(proc.cmdline()[:3])}")
            proc.terminate()
        except psutil.Error:
            continue
    _, still = psutil.wait_procs(procs, timeout=timeout)
    for proc in still:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(still, timeout=5)
    return described


def stop_on_sigterm() -> threading.Event:
    """An event this Airflow task's process sets on SIGTERM, Airflow's own handler still
    called.

    Airflow forwards SIGTERM to the tasks it stops (`make down`, a scheduler restart) and
    only calls the operator's ``on_kill``: a task went on as if nothing happened. A
    dead-letter run waiting out its interval held up the scheduler's stop, and a supervisor
    started a new streaming run the stopping scheduler still launched; the stop then timed
    out and killed the task processes, leaving their runs "running" for Airflow's 5 minutes.
    """
    stop = threading.Event()
    airflows = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if callable(airflows):
            airflows(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
    return stop
