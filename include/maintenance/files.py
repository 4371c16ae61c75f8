"""The files a long run leaves beside the tables, kept within their bounds.

* service logs ``<state>/logs/<service>.log`` (Kafka, PostgreSQL, Airflow's processes):
  beyond ``service_log_max_bytes`` copied to ``<service>.log.1`` and emptied.  The services
  write them in append mode, so they go on at the new end; lines written between the copy
  and the emptying (a few milliseconds) are lost, which a log may afford.
* older than ``keep_days``: backfill reports (``<state>/metrics/backfill/``), Great
  Expectations' stored results and their Data Docs pages, Airflow's task logs
  (``<state>/logs/airflow/``) and, through ``airflow db clean``, Airflow's metadata rows.

* Spark event logs (``<state>/spark-events``) not written to for ``[spark_history]
  keep_days``, but never the log of a driver still running (:func:`prune_event_logs`): the
  History Server's cleaner does the same, and this keeps the folder bounded while it is down.

``progress.jsonl`` and ``quality/history.jsonl`` rotate as they are written
(:mod:`include.jsonlines`); Kafka topics have ``retention.ms``; checkpoints keep
``spark.min_batches_to_retain`` batches and five backups.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileCare:
    """What one pass did to the files: what was rotated, how many old files went where."""

    rotated_logs: list[str]
    deleted: dict[str, int]  # folder -> files deleted

    def sentence(self) -> str:
        """The pass in one plain sentence, for the task log."""
        rotated = ", ".join(self.rotated_logs) or "none"
        gone = ", ".join(f"{n} in {where}" for where, n in self.deleted.items() if n) or "none"
        return f"service logs rotated: {rotated}; old files deleted: {gone}"


def cap_log(path: Path, max_bytes: int) -> bool:
    """Copy a log beyond ``max_bytes`` to ``<name>.1`` and empty it; True if it was."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)  # the writer appends (O_APPEND): it goes on at the new end
    return True


def prune_older(root: Path, keep_days: float, now: float | None = None) -> int:
    """Delete the files under ``root`` not modified for ``keep_days``, then the folders
    left empty (not ``root``); return how many files went."""
    if not root.is_dir():
        return 0
    cutoff = (now or time.time()) - keep_days * 86400
    deleted = 0
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            file = Path(folder, name)
            try:
                if file.stat().st_mtime < cutoff:
                    file.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue
        if Path(folder) != root and not any(Path(folder).iterdir()):
            Path(folder).rmdir()
    return deleted


def pruned_folders(settings: Settings) -> dict[str, Path]:
    """The folders whose files are kept ``keep_days``, by what they hold."""
    gx = settings.paths.quality_dir / "gx" / "uncommitted"
    return {
        "backfill reports": settings.paths.metrics_dir / "backfill",
        "quality results": gx / "validations",
        "quality report pages": gx / "data_docs" / "local_site" / "validations",
        "Airflow task logs": settings.paths.log_dir / "airflow",
    }


def care_for_files(settings: Settings, now: float | None = None) -> FileCare:
    """Rotate the service logs beyond their bound and delete the files past ``keep_days``."""
    care = settings.maintenance
    rotated = [
        path.name
        for path in sorted(settings.paths.log_dir.glob("*.log"))
        if cap_log(path, care.service_log_max_bytes)
    ]
    deleted = {
        what: prune_older(folder, care.keep_days, now)
        for what, folder in pruned_folders(settings).items()
    }
    result = FileCare(rotated_logs=rotated, deleted=deleted)
    log.info(result.sentence())
    return result


# What Spark appends to an event log's name: the codec, and while it is written ".inprogress".
EVENT_LOG_SUFFIXES = (".inprogress", ".zstd", ".lz4", ".lzf", ".snappy")
# A rolling event log is a folder of this prefix and the application id.
ROLLING_PREFIX = "eventlog_v2_"


def event_log_app_id(name: str) -> str:
    """The application id of an event log (a file, or a rolling log's folder) from its name:
    ``eventlog_v2_local-1765...`` and ``local-1765....zstd.inprogress`` are ``local-1765...``."""
    name = name.removeprefix(ROLLING_PREFIX)
    stripped = True
    while stripped:
        stripped = False
        for suffix in EVENT_LOG_SUFFIXES:
            if name.endswith(suffix):
                name, stripped = name.removesuffix(suffix), True
    return name


def stale_event_logs(
    last_written: Mapping[str, float], keep_days: float, now: float, running: set[str]
) -> list[str]:
    """The event logs to delete, by name: not written to for ``keep_days`` (``last_written``:
    each log's newest modification, epoch seconds) and not of a running application."""
    cutoff = now - keep_days * 86400
    return sorted(
        name
        for name, written in last_written.items()
        if written < cutoff and event_log_app_id(name) not in running
    )


def _last_written(entry: Path) -> float:
    """When an event log was last written to: a file's modification time, a rolling log's
    newest file's (the folder's own time moves only when a file is added)."""
    if not entry.is_dir():
        return entry.stat().st_mtime
    return max((f.stat().st_mtime for f in entry.iterdir()), default=entry.stat().st_mtime)


def prune_event_logs(settings: Settings, now: float | None = None) -> int:
    """Delete the Spark event logs past ``[spark_history] keep_days``, skipping those of the
    drivers running now; how many went."""
    from include.runtime.spark_history import live_app_ids

    root = settings.paths.spark_events_dir
    if not root.is_dir():
        return 0
    last_written = {}
    for entry in root.iterdir():
        if entry.name.startswith("."):
            continue  # Hadoop's checksum of a log, deleted with it
        try:
            last_written[entry.name] = _last_written(entry)
        except FileNotFoundError:
            continue
    stale = stale_event_logs(
        last_written,
        settings.spark_history.keep_days,
        now or time.time(),
        live_app_ids(settings),
    )
    for name in stale:
        entry = root / name
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
            (root / f".{name}.crc").unlink(missing_ok=True)
    log.info(
        "Spark event logs: %d older than %g days deleted from %s",
        len(stale),
        settings.spark_history.keep_days,
        root,
    )
    return len(stale)


# The tables a long run fills (each brings its dependents: a run's task instances, XComs).
# Not the DAGs and their versions: those are the code, kept as long as the files are there.
AIRFLOW_HISTORY_TABLES = (
    "job",
    "dag_run",
    "asset_event",
    "log",
    "task_instance",
    "task_instance_history",
    "task_reschedule",
    "xcom",
    "trigger",
    "import_error",
    "callback",
)


def airflow_db_clean_command(keep_days: float, now: datetime | None = None) -> list[str]:
    """``airflow db clean`` for the history rows older than ``keep_days`` (no archive
    tables: those would grow instead)."""
    before = (now or datetime.now(UTC)) - timedelta(days=keep_days)
    return [
        sys.executable,
        "-m",
        "airflow",
        "db",
        "clean",
        "--clean-before-timestamp",
        before.isoformat(timespec="seconds"),
        "--tables",
        ",".join(AIRFLOW_HISTORY_TABLES),
        "--skip-archive",
        "--yes",
    ]


def clean_airflow_db(settings: Settings, database_env: dict[str, str] | None = None) -> None:
    """Delete Airflow's metadata rows (runs, task instances, logs, XComs, events) older than
    ``keep_days``; raise with Airflow's own words when it fails.  ``database_env`` names the
    database (default: the platform's Airflow environment)."""
    command = airflow_db_clean_command(settings.maintenance.keep_days)
    if database_env is None:
        from include.runtime.airflow import airflow_environment

        # A task's own environment names no usable database (Airflow 3 keeps tasks off the
        # metadata database): the command gets the platform's, as `make airflow` does.
        database_env = airflow_environment(settings)
    env = {**os.environ, **database_env}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    output = (done.stdout + done.stderr).strip()
    if done.returncode:
        raise RuntimeError(
            f"airflow db clean failed (exit {done.returncode}); its last words:\n{output[-2000:]}"
        )
    log.info("airflow db clean: rows before %s deleted\n%s", command[6], output[-2000:])
