"""What the backfill pages show: the reconciliation reports the backfill leaves behind.

``<state>/metrics/backfill/<start>--<end>.json`` (spark_jobs/backfill_app.py writes one per
interval) says, per analytic, how many rows the backfill wrote, how many it compared with the
streaming table, how many differ each way and which ones.  The stream drops events later
than the watermark (counted in ``progress.jsonl`` as ``rowsDroppedByWatermark``): the pages
put those counts beside each difference, because late data explains a difference and
anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from include.backfill import REPORT_DIR
from include.contract import parse_utc
from include.jsonfile import read_json
from include.settings import Settings
from include.streaming.progress import read_progress

MATCHES, DIFFERS, NOT_COMPARED = "matches", "differs", "not compared"


@dataclass
class AnalyticReconciliation:
    """One analytic's line of a report, with its verdict and the late rows that may explain it."""

    analytic: str
    rows: int
    compared: int
    streaming_rows: int | None
    only_in_backfill: int
    only_in_stream: int
    duplicate_keys: int
    up_to: str | None
    note: str | None
    late_dropped: int  # rows the stream dropped as late while the interval could receive them
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def differences(self) -> int:
        """Rows only one side has, plus keys the stream wrote twice."""
        return self.only_in_backfill + self.only_in_stream + self.duplicate_keys

    @property
    def verdict(self) -> str:
        """matches, differs or not compared (the stream has no rows of the interval yet)."""
        if not self.compared and not self.streaming_rows:
            return NOT_COMPARED
        return DIFFERS if self.differences else MATCHES

    @property
    def explanation(self) -> str:
        """What the verdict means for the user, in a sentence."""
        if self.verdict == NOT_COMPARED:
            return self.note or "nothing to compare yet"
        if self.verdict == MATCHES:
            return f"all {self.compared:,} rows up to {self.up_to} equal the streaming table's"
        if self.duplicate_keys:
            return (
                f"the streaming table holds {self.duplicate_keys} key(s) twice: exactly-once "
                "was broken, a bug to report"
            )
        if self.late_dropped:
            # A late event adds a row the stream lacks, or changes one it has (then the
            # stream's row shows on one side and the backfill's on the other).
            return (
                f"the stream dropped {self.late_dropped:,} late row(s) meanwhile (later than "
                "the watermark): late data explains it; the backfill table has the complete rows"
            )
        return (
            "no late data explains this difference: a bug to report, with this page and "
            "the streaming task's log"
        )


@dataclass
class BackfillReport:
    """One interval's reconciliation report."""

    name: str  # the report file's stem: the page's address
    interval: str
    start: datetime | None
    end: datetime | None
    written_at: datetime | None
    airflow: dict[str, str] | None
    analytics: list[AnalyticReconciliation]

    @property
    def differences(self) -> int:
        """Differences over every analytic."""
        return sum(a.differences for a in self.analytics)

    @property
    def status(self) -> str:
        """differs if any analytic differs, matches if any matched, else not compared."""
        verdicts = {a.verdict for a in self.analytics}
        if DIFFERS in verdicts:
            return DIFFERS
        return MATCHES if MATCHES in verdicts else NOT_COMPARED


def reports_dir(settings: Settings) -> Path:
    """The folder of the reconciliation reports."""
    return settings.paths.metrics_dir / REPORT_DIR


def report_names(settings: Settings) -> list[str]:
    """Every report's name, newest interval first."""
    return sorted((p.stem for p in reports_dir(settings).glob("*.json")), reverse=True)


def _late_dropped(settings: Settings, start: datetime | None, until: datetime | None) -> dict:
    """Rows each query dropped as late in the batches from `start` to `until`: the events
    of an interval can only have arrived late after it began."""
    dropped: dict[str, int] = {}
    if start is None:
        return dropped
    for record in read_progress(settings.paths.metrics_dir, tail_bytes=32_000_000):
        moment = parse_utc(record.get("timestamp"))
        if moment is None or moment < start or (until is not None and moment > until):
            continue
        name = str(record.get("name"))
        dropped[name] = dropped.get(name, 0) + (record.get("rowsDroppedByWatermark") or 0)
    return dropped


def load_report(settings: Settings, name: str, with_late: bool = True) -> BackfillReport | None:
    """The report called `name` (a file stem from :func:`report_names`); None when there is
    none or it is not a report."""
    if name not in report_names(settings):  # never a path the caller made up
        return None
    raw = read_json(reports_dir(settings) / f"{name}.json", None)
    if not isinstance(raw, dict) or not isinstance(raw.get("analytics"), dict):
        return None
    start, written = parse_utc(raw.get("start")), parse_utc(raw.get("written_at"))
    late = _late_dropped(settings, start, written) if with_late else {}
    analytics = [
        AnalyticReconciliation(
            analytic=analytic,
            rows=int(line.get("rows") or 0),
            compared=int(line.get("compared") or 0),
            streaming_rows=line.get("streaming_rows"),
            only_in_backfill=int(line.get("only_in_backfill") or 0),
            only_in_stream=int(line.get("only_in_stream") or 0),
            duplicate_keys=int(line.get("duplicate_keys_in_stream") or 0),
            up_to=line.get("up_to"),
            note=line.get("note"),
            late_dropped=late.get(analytic, 0),
            examples=line.get("examples") or {},
        )
        for analytic, line in raw["analytics"].items()
    ]
    return BackfillReport(
        name=name,
        interval=str(raw.get("interval", name)),
        start=start,
        end=parse_utc(raw.get("end")),
        written_at=written,
        airflow=raw.get("airflow"),
        analytics=analytics,
    )


def recent_reports(settings: Settings, limit: int = 50) -> list[BackfillReport]:
    """The `limit` newest intervals' reports, newest first (without the late-row counts)."""
    found = (load_report(settings, n, with_late=False) for n in report_names(settings)[:limit])
    return [report for report in found if report]


def report_for_run(settings: Settings, dag_id: str, run_id: str) -> BackfillReport | None:
    """The report an Airflow run wrote; None when it wrote none or a later backfill of the
    same interval replaced it."""
    for name in report_names(settings):
        raw = read_json(reports_dir(settings) / f"{name}.json", None)
        airflow = (raw or {}).get("airflow") or {}
        if airflow.get("run_id") == run_id and airflow.get("dag_id") == dag_id:
            return load_report(settings, name)
    return None
