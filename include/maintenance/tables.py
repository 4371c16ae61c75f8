"""Compaction, vacuum and log cleanup of the Delta tables, with delta-rs, while Spark writes.

Every micro-batch appends one small file and one log entry to its table.  Per table:

1. **compact**: rewrite the small files into files of ``target_file_mb``.  The commit adds
   and removes files with ``dataChange: false`` (no row added or removed), so incremental
   readers (:mod:`include.quality.slices`) skip it, and Spark's streaming appends, blind
   appends that read no file, do not conflict with it.
2. **vacuum**: delete the files a compaction replaced once they are older than
   ``vacuum_retention_hours`` (a reader of an older version needs them until then).  Only
   files the log marks as removed are touched, never a file Spark is writing right now.
3. **checkpoint, then log cleanup**: a log checkpoint of the current version, then the log
   entries before the newest checkpoint older than ``log_retention_hours`` go.  A reader
   starts from the newest checkpoint it finds; one that started before that checkpoint
   was written is older than the retention, so nothing a live reader needs is deleted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from include.analytics import ANALYTICS, QUERIES
from include.settings import Settings
from include.settings.sections import MaintenanceSettings

log = logging.getLogger(__name__)

LOG_DIR = "_delta_log"
VERSION_DIGITS = 20


@dataclass(frozen=True)
class TableCare:
    """What one maintenance pass did to one table."""

    table: str
    version: int  # the table's version after the pass
    files_before: int  # data files of the current version, before and after compaction
    files_after: int
    deleted_files: int  # replaced data files vacuum deleted
    deleted_log_entries: int
    note: str = ""  # why a step was skipped

    def sentence(self) -> str:
        """The pass in one plain sentence, for the task log."""
        text = (
            f"{self.table}: {self.files_before} data files compacted to {self.files_after}, "
            f"{self.deleted_files} replaced files and {self.deleted_log_entries} old log "
            f"entries deleted (version {self.version})"
        )
        return f"{text}; {self.note}" if self.note else text


def table_paths(settings: Settings) -> dict[str, Path]:
    """Every Delta table the platform writes, by label: the sink tables and the backfill's."""
    paths = {name: settings.paths.table_path(name) for name in QUERIES}
    paths.update(
        {f"backfill/{a.name}": settings.paths.backfill_table_path(a.name) for a in ANALYTICS}
    )
    return paths


def log_version(name: str) -> int | None:
    """The table version a ``_delta_log`` entry belongs to (commit, checksum, checkpoint),
    None for other files (``_last_checkpoint``)."""
    digits = name.lstrip(".")[:VERSION_DIGITS]  # Hadoop's checksums: ".<name>.crc"
    return int(digits) if len(digits) == VERSION_DIGITS and digits.isdigit() else None


def clean_log(path: Path, retention_hours: float, now: float | None = None) -> int:
    """Delete the log entries of versions before the newest checkpoint that is itself older
    than ``retention_hours``; return how many went.

    Not simply before the newest checkpoint: a writer's snapshot (Spark's, mid-batch) may
    be built on the checkpoint before it and read it lazily, so a checkpoint goes only once
    a newer one has existed for the whole retention."""
    log_dir = path / LOG_DIR
    cutoff = (now or time.time()) - retention_hours * 3600
    entries = [(log_version(e.name), e) for e in log_dir.iterdir() if e.is_file()]
    settled = [
        version
        for version, entry in entries
        if version is not None and ".checkpoint." in entry.name and _mtime(entry) < cutoff
    ]
    if not settled:
        return 0  # no checkpoint old enough: every entry may still be needed
    safe, deleted = max(settled), 0
    for version, entry in entries:
        if version is not None and version < safe and _mtime(entry) < cutoff:
            entry.unlink(missing_ok=True)
            deleted += 1
    return deleted


def _mtime(entry: Path) -> float:
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return float("inf")  # gone meanwhile: nothing to delete


def care_for_table(label: str, path: Path, care: MaintenanceSettings) -> TableCare | None:
    """Compact, vacuum, checkpoint and clean the log of the table at ``path``; None when
    there is no table there (yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError, TableNotFoundError

    if not DeltaTable.is_deltatable(str(path)):
        return None
    try:
        table = DeltaTable(str(path))
    except TableNotFoundError:
        return None  # its first commit is being written right now
    before, note = len(table.file_uris()), ""
    try:
        table.optimize.compact(target_size=care.target_file_mb * 1024 * 1024)
    except CommitFailedError as exc:
        # A concurrent commit it cannot be reconciled with: nothing was changed; next pass.
        note = f"compaction left for the next run ({exc})"
    table.update_incremental()
    deleted = table.vacuum(
        retention_hours=care.vacuum_retention_hours,
        dry_run=False,
        # The configured retention may be shorter than the table's default (7 days).
        enforce_retention_duration=False,
        full=False,  # tombstones only: never a file Spark is writing right now
    )
    table.update_incremental()
    table.create_checkpoint()
    entries = clean_log(path, care.log_retention_hours)
    return TableCare(
        table=label,
        version=table.version(),
        files_before=before,
        files_after=len(table.file_uris()),
        deleted_files=len(deleted),
        deleted_log_entries=entries,
        note=note,
    )


def care_for_tables(settings: Settings) -> list[TableCare]:
    """One maintenance pass over every table; each table's pass is logged in a sentence.
    A table that fails does not stop the others; the failures are raised at the end."""
    done, failed = [], []
    for label, path in table_paths(settings).items():
        try:
            result = care_for_table(label, path, settings.maintenance)
        except Exception as exc:  # one damaged table must not leave the others unkept
            log.exception("%s: maintenance failed, the other tables go on", label)
            failed.append(f"{label} ({path}): {exc}")
            continue
        if result:
            log.info(result.sentence())
            done.append(result)
    if failed:
        raise RuntimeError("maintenance failed for: " + "; ".join(failed))
    return done
