"""Spark history that survives its driver: event logs and the Spark History Server.

A driver's Spark UI lives and dies with the driver: after the supervisor replaces a killed or
frozen one, the failed run's jobs, stages and errors would be gone.  So every Spark driver the
platform starts (streaming, backfill; :func:`event_log_conf`, applied by
``spark_jobs.session``) writes Spark's event log to ``<state>/spark-events``, and the History
Server (:class:`SparkHistoryServer`, the local service ``spark-history``) replays those logs,
a killed driver's unfinished one included, on ``[spark_history] port`` of ``bind_host``.

The logs stay bounded: each rolls over at ``rolling_file_mb`` and is zstd-compressed; the
History Server compacts a running driver's files beyond ``keep_rolled_files`` and deletes logs
older than ``keep_days``; the table_maintenance DAG deletes those too, so the directory stays
bounded while the History Server is down (``include.maintenance.files.prune_event_logs``).

Each driver also notes its application id in ``<state>/metrics/spark_drivers.jsonl``
(:func:`record_driver`, the last few kept): the health page and `make status` link the current
and the previous streaming driver's run in the History Server from there.

The driver imports this module: nothing heavy at import time (no Airflow, no requests).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from include.runtime.procs import PlatformError, alive
from include.runtime.spark import SparkDaemon
from include.runtime.spark_launch import STREAMING_APP, connector_jars
from include.runtime.tools import java_binary
from include.settings import Settings

HISTORY_SERVER_CLASS = "org.apache.spark.deploy.history.HistoryServer"
# The role of a streaming driver in the drivers' file: the script spark-submit ran.
STREAMING_ROLE = STREAMING_APP.stem
# How many drivers the drivers' file remembers (a restart a night, and the supervisor's).
KEEP_DRIVERS = 20


def event_log_uri(settings: Settings) -> str:
    """The event log directory as Spark wants it: a URI (``file:`` here, the state dir)."""
    return f"file:{settings.paths.spark_events_dir}"


def event_log_conf(settings: Settings) -> dict[str, str]:
    """What every Spark driver sets to keep its history: the event log on, in the state dir,
    rolled over at ``rolling_file_mb`` and compressed (zstd, which the History Server reads
    while the log is still being written)."""
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": event_log_uri(settings),
        "spark.eventLog.rolling.enabled": "true",
        "spark.eventLog.rolling.maxFileSize": f"{settings.spark_history.rolling_file_mb}m",
        "spark.eventLog.compress": "true",
        "spark.eventLog.compression.codec": "zstd",
    }


def history_server_conf(settings: Settings) -> dict[str, str]:
    """The History Server's properties: the same directory, its port (and no other: Spark
    would otherwise try the next 16 ports), its cleaner and the compaction of long logs."""
    h = settings.spark_history
    return {
        "spark.history.fs.logDirectory": event_log_uri(settings),
        "spark.history.ui.port": str(h.port),
        "spark.port.maxRetries": "0",
        # A killed driver's log never ends: list it and its jobs anyway.
        "spark.history.fs.inProgressOptimization.enabled": "true",
        "spark.history.fs.update.interval": "5s",
        "spark.history.fs.cleaner.enabled": "true",
        "spark.history.fs.cleaner.interval": "1h",
        "spark.history.fs.cleaner.maxAge": f"{round(h.keep_days * 86400)}s",
        "spark.history.fs.eventLog.rolling.maxFilesToRetain": str(h.keep_rolled_files),
        # Its own UI as the drivers': no kill links.
        "spark.ui.killEnabled": "false",
    }


def history_url(settings: Settings) -> str:
    """The History Server's root page."""
    return f"http://{settings.bind_host}:{settings.spark_history.port}"


def application_url(settings: Settings, app_id: str) -> str:
    """One application's pages (jobs, stages, SQL, the Structured Streaming tab) in the
    History Server."""
    return f"{history_url(settings)}/history/{app_id}/"


# ---------------------------------------------------------------- the drivers' file


@dataclass(frozen=True)
class DriverRecord:
    """A Spark driver as it noted itself at start: its application id and name, the script
    it runs (``role``: ``streaming_app``, ``backfill_app``, ...), pid, host and start time
    (ISO-8601, UTC)."""

    app_id: str
    app_name: str
    role: str
    pid: int
    host: str
    started: str

    def running(self) -> bool | None:
        """Whether the driver still runs; None when it ran on another host (a container)."""
        if self.host != socket.gethostname():
            return None
        return alive(self.pid)


def script_role(argv: list[str] | None = None) -> str:
    """The role of this driver: the name of the script it was started with."""
    argv = sys.argv if argv is None else argv
    return Path(argv[0]).stem if argv and argv[0] else "driver"


def record_driver(
    settings: Settings,
    app_id: str,
    app_name: str,
    role: str | None = None,
    now: datetime | None = None,
) -> DriverRecord:
    """Note this driver in the drivers' file, keeping the last :data:`KEEP_DRIVERS`.  Drivers
    starting together (a backfill beside the stream) take turns on a lock; the file is
    replaced whole, so a reader never sees half of it."""
    record = DriverRecord(
        app_id=app_id,
        app_name=app_name,
        role=role or script_role(),
        pid=os.getpid(),
        host=socket.gethostname(),
        started=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
    )
    path = settings.paths.spark_drivers_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        kept = [asdict(r) for r in reversed(recent_drivers(settings))][-(KEEP_DRIVERS - 1) :]
        lines = [json.dumps(r) for r in [*kept, asdict(record)]]
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        temporary.replace(path)
    return record


def recent_drivers(settings: Settings, role: str | None = None) -> list[DriverRecord]:
    """The drivers of the drivers' file, newest first (only ``role``'s when given); a line
    that does not parse is skipped."""
    try:
        lines = settings.paths.spark_drivers_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            record = DriverRecord(**json.loads(line))
        except (ValueError, TypeError):
            continue
        if role is None or record.role == role:
            found.append(record)
    return list(reversed(found))


@dataclass(frozen=True)
class DriverLink:
    """A streaming driver's run in the History Server, as the health page and `make status`
    show it."""

    label: str  # "current" (still running), "last" (ended) or "previous"
    record: DriverRecord
    url: str

    def sentence(self) -> str:
        """The link in one line for `make status`."""
        return (
            f"{self.label} streaming driver {self.record.app_id} (pid {self.record.pid}, "
            f"started {self.record.started}): {self.url}"
        )


def streaming_driver_links(settings: Settings) -> list[DriverLink]:
    """The current and the previous streaming driver's runs in the History Server: the
    newest is "current" while it runs and "last" once it ended, the one before it
    "previous"; none before the first driver started."""
    links = []
    for index, record in enumerate(recent_drivers(settings, STREAMING_ROLE)[:2]):
        label = "previous" if index else ("current" if record.running() else "last")
        links.append(DriverLink(label, record, application_url(settings, record.app_id)))
    return links


def live_app_ids(settings: Settings) -> set[str]:
    """The application ids of the drivers that still run on this host."""
    return {r.app_id for r in recent_drivers(settings) if r.running()}


# ---------------------------------------------------------------- the service


class SparkHistoryServer(SparkDaemon):
    """The local Spark History Server: pyspark's ``spark-class`` running
    :data:`HISTORY_SERVER_CLASS` with :func:`history_server_conf`, its web UI and REST API on
    ``bind_host`` (Spark's web UIs bind to SPARK_LOCAL_IP, else to every interface)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "spark-history", settings, settings.spark_history.port, url=history_url(settings)
        )

    @property
    def properties_file(self) -> Path:
        """The properties the server starts with, written at each start."""
        return self.settings.paths.run_dir / "spark-history.properties"

    def check_can_start(self) -> None:
        """Also refuse without a Java 17+ to run it on, saying what to install."""
        try:
            java_binary()
        except PlatformError as exc:
            raise PlatformError(f"{self.name}: {exc}") from None
        super().check_can_start()

    def prepare(self) -> None:
        """The event log directory (the server refuses to start without it) and the
        properties file."""
        self.settings.paths.spark_events_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in history_server_conf(self.settings).items()]
        self.properties_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def command(self) -> list[str]:
        """The History Server in the foreground, with the platform's properties only (no
        spark-defaults.conf of the machine)."""
        return [
            *self.spark_class(HISTORY_SERVER_CLASS),
            "--properties-file",
            str(self.properties_file),
        ]

    def environment(self) -> dict[str, str]:
        """The Spark environment (SPARK_LOCAL_IP = bind_host keeps it on loopback), its heap,
        and the drivers' connector jars on its class path: the SQL pages show the Kafka
        source's own metrics only with its classes (a warning per plan without them)."""
        try:
            jars = ":".join(str(jar) for jar in connector_jars(self.settings))
        except PlatformError:
            jars = ""  # not fetched yet: the pages work, those metrics are left out
        return {
            **super().environment(),
            "SPARK_DAEMON_MEMORY": self.settings.spark_history.heap,
            **({"SPARK_DIST_CLASSPATH": jars} if jars else {}),
        }

    def healthy(self) -> bool:
        """Its REST API answers the list of applications."""
        import requests

        try:
            answer = requests.get(f"{self.url}/api/v1/applications?limit=1", timeout=3)
        except requests.RequestException:
            return False
        return answer.ok and isinstance(answer.json(), list)
