"""What every local service is: a background process with a PID file, a log and a port.

A service knows how to prepare its data once, start in the background, tell whether it
answers, and stop.  The PostgreSQL, Kafka, Spark standalone and Airflow services build on
`Service`; `cli.py` strings them together, and the tests start the same services.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from include.runtime.procs import (
    PidFile,
    PlatformError,
    alive,
    port_answers,
    port_owner,
    spawn,
    stop_tree,
    wait_until,
)
from include.settings import Settings
from include.settings.base import PROJECT_ROOT


@dataclass
class Service:
    """One local service: ``name`` names its PID file and log, ``port`` is where it answers
    (0: nowhere), ``url`` what `make status` shows, ``depends_on`` the services it needs."""

    name: str
    settings: Settings
    port: int = 0
    url: str = ""
    depends_on: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pid_file(self) -> PidFile:
        """Where the running process's PID is kept (in the state dir's run folder)."""
        return PidFile(self.settings.paths.run_dir / f"{self.name}.pid")

    @property
    def log_file(self) -> Path:
        """The file the process's output goes to."""
        return self.settings.paths.log_dir / f"{self.name}.log"

    @property
    def marker(self) -> str:
        """The environment marker every process of this platform carries: its state dir."""
        return str(self.settings.state)

    def pid(self) -> int | None:
        """The PID from the PID file, None when there is none."""
        return self.pid_file.read()

    def running(self) -> bool:
        """Whether the process of the PID file is alive."""
        return alive(self.pid())

    def answers(self) -> bool:
        """Whether something accepts connections on the service's port."""
        return bool(self.port) and port_answers(self.settings.bind_host, self.port)

    def check_can_start(self) -> None:
        """Refuse to start over a stale PID file or onto a port someone else holds."""
        pid = self.pid()
        if pid and not alive(pid):
            raise PlatformError(
                f"{self.name}: stale PID file {self.pid_file.path} (process {pid} is gone; "
                "the previous run did not stop cleanly). Run `make down` to clean up, "
                "then `make up` again."
            )
        if self.port and (owner := port_owner(self.settings.bind_host, self.port)):
            raise PlatformError(
                f"{self.name}: port {self.settings.bind_host}:{self.port} is already in use "
                f"by {owner}. Stop that process or choose another port in "
                "config/platform.toml (or the ECOM_* environment variable)."
            )

    def prepare(self) -> None:
        """One-time set-up of data directories; idempotent."""

    def command(self) -> list[str]:
        """The argv that runs the service in the foreground."""
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The environment the service runs with."""
        return dict(os.environ)

    def start_timeout(self) -> float:
        """Seconds `start` waits for the service to become healthy."""
        return 60.0

    def start(self) -> bool:
        """Start if not running; True if it was started now."""
        if self.running():
            return False
        self.check_can_start()
        self.prepare()
        proc = self._spawn()
        self.pid_file.write(proc.pid)
        wait_until(
            self.healthy,
            f"{self.name} to answer on port {self.port} (log: {self.log_file})",
            timeout=self.start_timeout(),
            interval=1.0,
            failed=lambda: (
                None
                if proc.poll() is None
                else f"exited with code {proc.returncode}; last log lines:\n{self.tail_log()}"
            ),
        )
        return True

    def _spawn(self) -> subprocess.Popen:
        return spawn(self.command(), self.log_file, self.environment(), PROJECT_ROOT, self.marker)

    def healthy(self) -> bool:
        """Whether the service does its job (by default: it answers on its port)."""
        return self.answers()

    def stop(self, timeout: float = 60.0) -> str:
        """Stop the process and everything it spawned; says what happened."""
        pid = self.pid()
        if not pid:
            return "not running"
        if not alive(pid):
            self.pid_file.remove()
            return f"removed stale PID file (process {pid} was gone)"
        killed = stop_tree(pid, timeout=timeout)
        self.pid_file.remove()
        return "killed after timeout" if killed else "stopped"

    def tail_log(self, lines: int = 15) -> str:
        """The last lines of the service's log, for an error message."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
