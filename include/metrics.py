"""The pipeline's state files as Prometheus metrics (text exposition format 0.0.4).

What a scrape of ``/ecom/metrics`` returns, built from what the pipeline already leaves
behind, so the endpoint needs no Spark, Kafka or Airflow to answer:

* the last progress record per streaming query (``progress.jsonl``, read from its tail):
  input and processed rates, batch duration, state rows, late rows dropped, batch id;
* the supervisor's last verdict per query (``health.json``): the verdict and the lag;
* the last quality result per table (the tail of the quality history);
* the dead letters: rows in the dead-letter table.

:func:`exposition` is pure (a :class:`Snapshot` in, text out); :func:`snapshot` reads the
files.  Every metric is named ``ecom_*`` and labelled by ``query``, ``table``,
``verdict`` or ``status``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from include.analytics import QUERIES
from include.contract import parse_utc
from include.jsonlines import records, tail_lines
from include.quality.history import HISTORY_FILE
from include.settings import Settings
from include.streaming.health import State
from include.streaming.progress import last_progress
from include.streaming.status import STOPPED, pipeline_status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Every verdict gets a sample (0 or 1) so a panel summing them never sees a gap; "unknown"
# is a query without one in the snapshot.
VERDICTS = (*State, STOPPED, "unknown")
QUALITY_STATUSES = ("pass", "warn", "fail")
# The quality history's last lines: one line is one run over every table (tens of KB).
QUALITY_TAIL_BYTES = 2_000_000


@dataclass
class Snapshot:
    """What one scrape reports: the newest progress record per query, the supervisor's
    health record, the newest checked result per quality table, the dead-letter rows."""

    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> result
    dead_letter_rows: int | None = None
    queries: tuple[str, ...] = QUERIES


@dataclass
class Family:
    """One metric: name, type, help, and its samples (labels, value)."""

    name: str
    kind: str  # gauge | counter
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, labels: dict[str, str], value: Any) -> None:
        """Add a sample; a missing or non-numeric value is left out, not reported as 0."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if math.isnan(value):
            return
        self.samples.append((labels, float(value)))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def render(families: Iterable[Family]) -> str:
    """The families in the text exposition format: HELP, TYPE, then one line a sample."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(
                f"{family.name}{{{pairs}}} {_number(value)}"
                if pairs
                else f"{family.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def _seconds(moment: Any) -> float | None:
    parsed = parse_utc(moment) if isinstance(moment, str) else None
    return parsed.timestamp() if parsed else None


def query_families(snap: Snapshot) -> list[Family]:
    """Per query: the figures of its newest progress record and the supervisor's verdict."""
    f = {
        "input": Family(
            "ecom_query_input_rows_per_second",
            "gauge",
            "Input rate of the query's last micro-batch (rows per second).",
        ),
        "processed": Family(
            "ecom_query_processed_rows_per_second",
            "gauge",
            "Processing rate of the query's last micro-batch (rows per second).",
        ),
        "duration": Family(
            "ecom_query_batch_duration_seconds",
            "gauge",
            "Duration of the query's last micro-batch.",
        ),
        "rows": Family(
            "ecom_query_batch_input_rows", "gauge", "Input rows of the query's last micro-batch."
        ),
        "state": Family(
            "ecom_query_state_rows",
            "gauge",
            "Rows held in the query's state stores after its last micro-batch.",
        ),
        "late": Family(
            "ecom_query_late_rows_dropped",
            "gauge",
            "Rows older than the watermark dropped in the query's last micro-batch "
            "(still in the input topic for a backfill).",
        ),
        "batch": Family("ecom_query_last_batch_id", "gauge", "Id of the query's last micro-batch."),
        "at": Family(
            "ecom_query_last_batch_timestamp_seconds",
            "gauge",
            "When the query's last micro-batch started (Unix time): stale figures show here.",
        ),
        "lag": Family(
            "ecom_query_lag_records",
            "gauge",
            "Records behind the input topic's end, as the supervisor last measured them.",
        ),
        "verdict": Family(
            "ecom_supervisor_verdict",
            "gauge",
            "The supervisor's last verdict per query: 1 for the verdict it holds, 0 for the "
            "others.",
        ),
    }
    verdicts = {
        v["query"]: v
        for v in snap.health.get("queries", [])
        if isinstance(v, dict) and "query" in v
    }
    for query in snap.queries:
        labels = {"query": query}
        record = snap.progress.get(query) or {}
        f["input"].add(labels, record.get("inputRowsPerSecond"))
        f["processed"].add(labels, record.get("processedRowsPerSecond"))
        duration = record.get("batchDurationMs")
        f["duration"].add(labels, duration / 1000 if isinstance(duration, (int, float)) else None)
        f["rows"].add(labels, record.get("numInputRows"))
        f["state"].add(labels, record.get("stateRowsTotal"))
        f["late"].add(labels, record.get("rowsDroppedByWatermark"))
        f["batch"].add(labels, record.get("batchId"))
        f["at"].add(labels, _seconds(record.get("timestamp")))
        verdict = verdicts.get(query, {})
        f["lag"].add(labels, verdict.get("total_lag"))
        held = verdict.get("state", "unknown")
        for name in dict.fromkeys((*VERDICTS, held)):  # a verdict added later still shows
            f["verdict"].add({"query": query, "verdict": name}, int(name == held))
    checked = Family(
        "ecom_supervisor_checked_timestamp_seconds",
        "gauge",
        "When the supervisor last judged the queries (Unix time).",
    )
    checked.add({}, snap.health.get("at"))
    return [*f.values(), checked]


def quality_families(snap: Snapshot) -> list[Family]:
    """Per table: its newest quality result (status, checks by status, when)."""
    status = Family(
        "ecom_quality_status",
        "gauge",
        "The table's last quality result: 1 for its status (pass, warn, fail), 0 for the others.",
    )
    checks = Family(
        "ecom_quality_checks", "gauge", "Checks of the table's last quality result, by status."
    )
    at = Family(
        "ecom_quality_checked_timestamp_seconds",
        "gauge",
        "When the table's last quality result was recorded (Unix time).",
    )
    for table, result in sorted(snap.quality.items()):
        held = result.get("status")
        for name in QUALITY_STATUSES:
            status.add({"table": table, "status": name}, int(name == held))
            found = sum(1 for c in result.get("checks", []) if c.get("status") == name)
            checks.add({"table": table, "status": name}, found)
        at.add({"table": table}, _seconds(result.get("at")))
    return [status, checks, at]


def exposition(snap: Snapshot) -> str:
    """Every ``ecom_*`` metric of ``snap`` in the text exposition format."""
    dead = Family(
        "ecom_dead_letter_rows",
        "gauge",
        "Rows in the dead-letter table: malformed events quarantined with a reason.",
    )
    dead.add({}, snap.dead_letter_rows)
    return render([*query_families(snap), *quality_families(snap), dead])


# ---------------------------------------------------------------- reading the state files


def last_quality(settings: Settings, tail_bytes: int = QUALITY_TAIL_BYTES) -> dict[str, dict]:
    """Per table, its newest checked result (a run that skipped the table does not count),
    with the run's time as ``at``."""
    found: dict[str, dict[str, Any]] = {}
    # Across the rotated files too: just after a rotation the current file holds no run.
    lines = tail_lines(settings.paths.quality_dir / HISTORY_FILE, tail_bytes)
    for run in records(reversed(lines)):
        for table in run.get("tables", []):
            name = table.get("table")
            if name and name not in found and table.get("status") in QUALITY_STATUSES:
                found[name] = {**table, "at": run.get("at")}
    return found


def snapshot(settings: Settings) -> Snapshot:
    """Read what a scrape reports from the state dir; missing files give missing samples."""
    from include.ui.views import dead_letter_count

    # The verdicts as make status and the health page read them: a stale record is no
    # "dead" alarm but "stopped" (include/streaming/status.py).
    progress = last_progress(settings.paths.metrics_dir, QUERIES)
    status = pipeline_status(settings, progress=progress)
    health = {
        "at": status.checked_at.timestamp() if status.checked_at else None,
        "queries": [
            {"query": q.query, "state": q.state, "total_lag": q.lag} for q in status.queries
        ],
    }
    return Snapshot(
        progress=progress,
        health=health,
        quality=last_quality(settings),
        dead_letter_rows=dead_letter_count(settings),
    )
