"""What a quality run found: per check, per table, per run, and the run's outcome.

A :class:`RunReport` is what :func:`include.quality.run.run_quality` returns, what the
history stores one JSON line of (:mod:`include.quality.history`) and what the report pages
show.  :func:`raise_for_failures` raises :class:`DataQualityError` naming every failed
``fail`` check; failed ``warn`` checks are only reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.quality.checks import FAIL, TABLE_MEASURES, WARN
from include.quality.formatting import format_value, is_missing

PASS = "pass"
SKIPPED = "skipped"


class DataQualityError(Exception):
    """At least one check of severity ``fail`` failed."""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check, reduced to what a log line, the history and the UI need."""

    name: str
    severity: str
    expectation: str
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int | None = None
    observed_value: Any = None
    sample: list[Any] = field(default_factory=list)
    error: str | None = None
    detail: str | None = None  # what the measure saw, in words (table checks)

    @property
    def status(self) -> str:
        """pass, or when the check failed its severity: warn or fail."""
        if self.success:
            return PASS
        return WARN if self.severity == WARN else FAIL

    @property
    def is_row_check(self) -> bool:
        """Whether the check ran on the rows rather than on a table-level measure."""
        return bool(self.columns) and self.columns[0] not in TABLE_MEASURES

    @property
    def observed_text(self) -> str:
        """What the check saw, short: "3 rows" for a row check, the measure otherwise."""
        if self.is_row_check and self.unexpected_count is not None:
            return f"{self.unexpected_count} row{'' if self.unexpected_count == 1 else 's'}"
        if is_missing(self.observed_value):
            return "-"
        return format_value(self.observed_value, self.columns)

    def describe(self) -> str:
        """One plain-words line, e.g. ``total_revenue >= 0: 3 rows violate (sample: -5.00)``."""
        if self.error:
            text = f"{self.name}: could not be evaluated ({self.error})"
        elif self.unexpected_count is not None and self.is_row_check:
            if self.success:
                text = f"{self.name}: ok"
            else:
                rows = "row violates" if self.unexpected_count == 1 else "rows violate"
                text = f"{self.name}: {self.unexpected_count} {rows}"
                shown = [format_value(v, self.columns) for v in self.sample if not is_missing(v)]
                if shown:
                    text += f" (sample: {', '.join(shown)})"
        elif self.success:
            text = f"{self.name}: ok"
        else:
            text = f"{self.name}: observed {format_value(self.observed_value, self.columns)}"
        return f"{text}; {self.detail}" if self.detail else text


@dataclass(frozen=True)
class TableReport:
    """The checks of one table in one run."""

    table: str
    status: str  # pass, warn, fail or skipped
    rows_checked: int
    rows_in_table: int
    versions: tuple[int | None, int | None]  # (last validated before, validated now)
    checks: tuple[CheckResult, ...]
    note: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        """The table's part of a history line, each check with its status and observed text."""
        data = asdict(self)
        data["checks"] = [
            {**asdict(c), "status": c.status, "observed_text": c.observed_text} for c in self.checks
        ]
        return data


@dataclass(frozen=True)
class RunReport:
    """One run of the quality checks over the sink tables."""

    run_id: str
    at: str  # ISO-8601 UTC
    mode: str  # incremental or full
    tables: tuple[TableReport, ...]
    report_path: Path  # absolute path of the Data Docs index.html
    airflow: Mapping[str, Any] = field(default_factory=dict)  # dag_id, run_id, try_number

    @property
    def status(self) -> str:
        """The worst table status: fail, warn, pass, or skipped when no table was checked."""
        statuses = {t.status for t in self.tables}
        for status in (FAIL, WARN, PASS):
            if status in statuses:
                return status
        return SKIPPED

    def checks_with(self, status: str) -> list[tuple[str, CheckResult]]:
        """Every (table, check) whose status is ``status``."""
        return [(t.table, c) for t in self.tables for c in t.checks if c.status == status]

    def to_json_dict(self) -> dict[str, Any]:
        """The run as one history line holds it."""
        return {
            "run_id": self.run_id,
            "at": self.at,
            "mode": self.mode,
            "status": self.status,
            "airflow": dict(self.airflow),
            "report_path": str(self.report_path),
            "tables": [t.to_json_dict() for t in self.tables],
        }


def raise_for_failures(report: RunReport) -> None:
    """Raise :class:`DataQualityError` listing each failed ``fail`` check, or return."""
    failures = report.checks_with(FAIL)
    if not failures:
        return
    lines = [f"{len(failures)} data quality check(s) of severity 'fail' failed:"]
    lines += [f"  - {table}: {check.describe()}" for table, check in failures]
    lines.append(f"Data quality report: {report.report_path}")
    raise DataQualityError("\n".join(lines))
