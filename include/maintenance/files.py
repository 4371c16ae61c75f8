"""The files a long run leaves beside the tables, kept within their bounds.

* service logs ``<state>/logs/<service>.log`` (Kafka, PostgreSQL, Airflow's processes):
  beyond ``service_log_max_bytes`` copied to ``<service>.log.1`` and emptied.  The services
  write them in append mode, so they go on at the new end; lines written between the copy
  and the emptying (a few milliseconds) are lost, which a log may afford.
* older than ``keep_days``: backfill reports (``<state>/metrics/backfill/``), Great
  Expectations' stored results and their Data Docs pages, Airflow's task logs
  (``<state>/logs/airflow/``) and, through ``airflow db clean``, Airflow's metadata rows.

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
