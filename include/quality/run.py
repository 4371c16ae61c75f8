"""One quality run: check the sink tables, record the results, and return the report.

:func:`run_quality` is the story of a run: choose the tables (and the backfill tables
that changed), read what changed in each (:mod:`include.quality.slices`), compute the
table-level measures (:mod:`include.quality.measures`,
:mod:`include.quality.reconciliation`), validate rows and measures with Great
Expectations (:mod:`include.quality.gx_runner`), then append the run to the history and
remember the versions validated (:mod:`include.quality.history`).

Incremental by default: the row checks see only the rows committed since the last
validated Delta version of each table; ``full=True`` checks every row.  The table checks
always look at the table as a whole, or at the slice's windows in full.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from include.analytics import DEAD_LETTERS, REVENUE_BY_CATEGORY, TIME_COLUMNS
from include.quality.checks import (
    DEAD_LETTER_PERCENT,
    DUPLICATE_KEYS,
    FAIL,
    MINUTES_BEHIND_INPUT,
    RECONCILIATION_MISMATCHES,
    SCHEMA_DIFFERENCES,
    WARN,
    TableSuite,
    table_suites,
)
from include.quality.gx_runner import docs_index_path, gx_context, validate_table
from include.quality.history import append_history, load_validated, save_validated
from include.quality.measures import (
    Measure,
    dead_letter_measure,
    duplicate_measure,
    freshness_measure,
    schema_measure,
)
from include.quality.reconciliation import reconciliation_measure
from include.quality.report import PASS, SKIPPED, RunReport, TableReport
from include.quality.slices import TableSlice, read_slice
from include.quality.source import InputSource, Newest
from include.settings import Settings
from include.tables import read_table

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

log = logging.getLogger(__name__)


class NoDataYet(Exception):
    """No sink table has enough committed rows to check: skip, don't fail."""


@dataclass(frozen=True)
class Target:
    """One table a run checks: a streaming sink table, or a backfill table."""

    label: str  # its name in reports, logs and GX: "revenue_by_category", "backfill/..."
    suite: TableSuite
    path: Path
    streamed: bool


def targets(settings: Settings, tables: Sequence[str] | None = None) -> list[Target]:
    """The sink tables (all, or ``tables``) and, for the analytics among them, their
    backfill tables when a backfill has written one."""
    suites = table_suites(settings)
    names = list(tables or suites)
    unknown = sorted(set(names) - set(suites))
    if unknown:
        raise ValueError(
            f"unknown table(s) {', '.join(unknown)}; the tables are: {', '.join(suites)}"
        )
    found = [Target(n, suites[n], settings.paths.table_path(n), True) for n in names]
    for name in names:
        path = settings.paths.backfill_table_path(name)
        if name in TIME_COLUMNS and path.exists():
            # A backfill is not a stream: freshness does not apply to it.
            suite = replace(
                suites[name],
                checks=tuple(
                    c for c in suites[name].checks if c.columns != (MINUTES_BEHIND_INPUT,)
                ),
                freshness_column=None,
            )
            found.append(Target(f"backfill/{name}", suite, path, False))
    return found


def run_quality(
    settings: Settings,
    source: InputSource,
    *,
    full: bool = False,
    tables: Sequence[str] | None = None,
    now: datetime | None = None,
    airflow: Mapping[str, Any] | None = None,
) -> RunReport:
    """Check the sink tables (all, or ``tables``), record the run, and return its report.

    Backfill tables are checked too, when they changed since their last check.  Raises
    :class:`NoDataYet` when no table has ``quality.min_rows`` rows yet.
    """
    chosen = targets(settings, tables)
    now = now or datetime.now(UTC)
    validated = {} if full else load_validated(settings)
    newest = source.newest(settings.events.naive_timezone)
    slices, notes = _read_slices(settings, chosen, validated)
    run = _RunInputs(settings, source, now, full, newest, _quarantined(settings))
    context = gx_context(settings)
    reports = [
        _check_table(context, run, target, slices[target.label])
        if target.label in slices
        else _skipped(target, validated.get(target.label), notes[target.label])
        for target in chosen
    ]
    report = RunReport(
        run_id=uuid.uuid4().hex[:12],
        at=now.isoformat(),
        mode="full" if full else "incremental",
        tables=tuple(reports),
        report_path=docs_index_path(context),
        airflow=dict(airflow or {}),
    )
    _record(settings, report, slices)
    return report


@dataclass(frozen=True)
class _RunInputs:
    """What the measures of every table share in one run."""

    settings: Settings
    source: InputSource
    now: datetime
    full: bool
    newest: Newest | None  # the input topic's newest record, read once per run
    quarantined: set[tuple[int, int]]  # (partition, offset) of every dead letter


def _read_slices(
    settings: Settings, chosen: Sequence[Target], validated: Mapping[str, int]
) -> tuple[dict[str, TableSlice], dict[str, str]]:
    """Per target label, the slice to check, or the note saying why the target is skipped
    (too few rows, or a backfill unchanged since its last check).

    Raises :class:`NoDataYet` when every target is skipped.
    """
    min_rows = max(settings.quality.min_rows, 1)
    slices: dict[str, TableSlice] = {}
    notes: dict[str, str] = {}
    for target in chosen:
        started = time.monotonic()
        piece = read_slice(target.path, target.suite, validated.get(target.label))
        if piece is None or len(piece.keys) < min_rows:
            notes[target.label] = f"fewer than {min_rows} committed row(s) yet"
        elif not target.streamed and piece.since == piece.version:
            notes[target.label] = f"unchanged since version {piece.version}, checked before"
        else:
            slices[target.label] = piece
            log.info(
                "%s: %d rows to check (of %d; version %s -> %d) read in %.1f s",
                target.label,
                len(piece.rows),
                len(piece.keys),
                piece.since,
                piece.version,
                time.monotonic() - started,
            )
    if not slices:
        raise NoDataYet(
            f"no table has {min_rows} committed row(s) yet, or none changed: "
            "waiting for the streaming job to close its first windows"
        )
    return slices, notes


def _quarantined(settings: Settings) -> set[tuple[int, int]]:
    """(partition, offset) of every input record the pipeline sent to the dead letters."""
    dead = read_table(
        settings.paths.table_path(DEAD_LETTERS.name), ["source_partition", "source_offset"]
    )
    return (
        set(zip(dead["source_partition"], dead["source_offset"], strict=True))
        if dead is not None
        else set()
    )


def _check_table(
    context: FileDataContext, run: _RunInputs, target: Target, piece: TableSlice
) -> TableReport:
    """Measure one table, validate its rows and measures, and report its checks."""
    checks = validate_table(
        context, target.label, target.suite, piece, _measure(run, target, piece)
    )
    statuses = {c.status for c in checks}
    status = FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
    versions = (piece.since, piece.version)
    return TableReport(target.label, status, len(piece.rows), len(piece.keys), versions, checks)


def _skipped(target: Target, since: int | None, note: str) -> TableReport:
    """The report of a table the run did not check, saying why (``note``)."""
    return TableReport(target.label, SKIPPED, 0, 0, (since, None), (), note)


def _measure(run: _RunInputs, target: Target, piece: TableSlice) -> dict[str, Measure]:
    """The table-level measures of one table: the two every table has, plus freshness for
    a streamed table, reconciliation for revenue and the rate for the dead letters."""
    settings, name, suite = run.settings, target.suite.table, target.suite
    measures = {
        SCHEMA_DIFFERENCES: schema_measure(name, piece.schema),
        DUPLICATE_KEYS: duplicate_measure(name, piece.keys),
    }
    if target.streamed and suite.freshness_column:
        flow_minutes = (
            settings.quality.freshness_minutes + settings.analytics.watermark_seconds / 60
        )
        measures[MINUTES_BEHIND_INPUT] = freshness_measure(
            suite, piece.keys, run.newest, run.now, flow_minutes
        )
    if name == REVENUE_BY_CATEGORY.name:
        # Incremental: the slice's windows in the whole table (a duplicate of one may
        # sit in an older file), read with only the columns reconciliation needs.
        whole = (
            piece.rows
            if piece.since is None
            else read_table(target.path, ["window_start", "category", "total_revenue"])
        )
        measures[RECONCILIATION_MISMATCHES] = reconciliation_measure(
            settings,
            whole,
            piece.rows.get("window_start", pd.Series(dtype=object)),
            run.source,
            run.quarantined,
        )
    if name == DEAD_LETTERS.name:
        measures[DEAD_LETTER_PERCENT] = dead_letter_measure(
            settings, piece.keys, run.source, run.now, run.full
        )
    return measures


def _record(settings: Settings, report: RunReport, slices: Mapping[str, TableSlice]) -> None:
    """Append the run to the history and remember the versions it validated."""
    append_history(settings, report)
    versions = load_validated(settings)
    versions.update({label: piece.version for label, piece in slices.items()})
    save_validated(settings, versions)
