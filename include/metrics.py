"""The pipeline's state files as Prometheus metrics: counters to rate, gauges to read.

What a scrape of ``/ecom/metrics`` returns, built from what the pipeline already leaves
behind, so the endpoint needs no Spark, Kafka or Airflow to answer:

* counters (``*_total``), from running totals their one writer keeps under the metrics
  dir, so ``rate()`` and ``increase()`` see every batch whenever Prometheus scrapes:
  the streaming driver's rows in, rows out per output, batches, late rows dropped and dead
  letters (``streaming_totals.json``, advanced once per batch id by the driver's listener,
  :class:`include.streaming.progress.StreamTotals`), the producer's events sent and failed
  (``producer_totals.json``), the driver restarts by the supervisor and the restart DAG
  (``restart_totals.json``);
* gauges: the last progress record per query (``progress.jsonl``, read from its tail):
  rates, batch duration, state rows, batch id and time; the supervisor's last verdict and
  lag per query (``health.json``); the last quality result per table (the tail of the
  quality history); the rows in the dead-letter table.

:func:`exposition` is pure (a :class:`Snapshot` in, text out, through prometheus_client's
own writer); :func:`snapshot` reads the files.  Every metric is named ``ecom_*``; a figure
that is missing is left out, never reported as 0.
"""

from __future__ import annotations

import fcntl
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from include.analytics import DEAD_LETTERS, QUERIES
from include.contract import parse_utc
from include.jsonfile import read_json, write_json
from include.jsonlines import records, tail_lines
from include.quality.history import HISTORY_FILE
from include.settings import Settings
from include.streaming.health import State
from include.streaming.progress import last_progress, read_totals
from include.streaming.status import STOPPED, pipeline_status

# The classic text format (0.0.4): what every Prometheus since 2.0 reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Every verdict gets a sample (0 or 1) so a panel summing them never sees a gap; "unknown"
# is a query without one in the snapshot.
VERDICTS = (*State, STOPPED, "unknown")
QUALITY_STATUSES = ("pass", "warn", "fail")
# The quality history's last lines: one line is one run over every table (tens of KB).
QUALITY_TAIL_BYTES = 2_000_000

# The running totals of the producer and of the restarts, under the metrics dir (the
# streaming driver's are include.streaming.progress.TOTALS_FILE).
PRODUCER_TOTALS_FILE = "producer_totals.json"
RESTART_TOTALS_FILE = "restart_totals.json"
# Who restarted the driver: the supervisor (a dead, stalled or zombie driver) or the
# scheduled restart (the streaming_restart DAG).  Label values of ecom_driver_restarts_total.
RESTARTED_BY = ("supervisor", "restart_dag")


@dataclass
class Snapshot:
    """What one scrape reports: the newest progress record per query, the supervisor's
    health record, the newest checked result per quality table, the dead-letter rows, and
    the running totals of the streaming driver, the producer and the restarts."""

    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> result
    dead_letter_rows: int | None = None
    queries: tuple[str, ...] = QUERIES
    stream_totals: dict[str, Any] = field(default_factory=dict)
    producer_totals: dict[str, Any] = field(default_factory=dict)
    restart_totals: dict[str, Any] = field(default_factory=dict)


def _number(value: Any) -> float | None:
    """The value as a sample, or None when missing or not a number (then left out)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _add(family: GaugeMetricFamily | CounterMetricFamily, labels: list[str], value: Any) -> None:
    """Add a sample; a missing or non-numeric value is left out, not reported as 0."""
    number = _number(value)
    if number is not None:
        family.add_metric(labels, number)


def _add_labelled(family: GaugeMetricFamily | CounterMetricFamily, by_label: dict) -> None:
    """One sample per entry of ``by_label`` (its one label's value -> the figure), sorted."""
    for label, value in sorted(by_label.items()):
        _add(family, [label], value)


def _seconds(moment: Any) -> float | None:
    parsed = parse_utc(moment) if isinstance(moment, str) else None
    return parsed.timestamp() if parsed else None


def _gauge(name: str, help_text: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, labels=list(labels))


def _counter(name: str, help_text: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, labels=list(labels))


def counter_families(snap: Snapshot) -> list[Metric]:
    """The running totals: counters that only go up (a reset is a new state dir)."""
    stream = snap.stream_totals
    rows_in = _counter(
        "ecom_input_rows_total",
        "Records the streaming query read from the input topic (events and malformed "
        "records), every micro-batch counted once.",
    )
    _add(rows_in, [], stream.get("input_rows"))
    rows_out = _counter(
        "ecom_output_rows_total",
        "Rows the streaming query wrote, per output (each analytic's table and topic, and "
        "dead_letters).",
        ("output",),
    )
    written = _object(stream.get("output_rows"))
    _add_labelled(rows_out, written)
    batches = _counter("ecom_batches_total", "Micro-batches the streaming query completed.")
    _add(batches, [], stream.get("batches"))
    late = _counter(
        "ecom_late_rows_dropped_total",
        "Rows older than the watermark each output's operators dropped (an event late for "
        "every analytic counts once per output; still in the input topic for a backfill).",
        ("output",),
    )
    _add_labelled(late, _object(stream.get("late_rows_dropped")))
    dead = _counter(
        "ecom_dead_letters_total",
        "Malformed events the streaming query quarantined as dead letters, with a reason.",
    )
    _add(dead, [], written.get(DEAD_LETTERS.name))
    restarts = _counter(
        "ecom_driver_restarts_total",
        "Streaming driver restarts, by who restarted it: the supervisor (a dead, stalled or "
        "lost driver) or the scheduled restart DAG.",
        ("by",),
    )
    _add_labelled(restarts, _object(snap.restart_totals.get("restarts")))
    sent = _counter(
        "ecom_producer_events_sent_total", "Events the producer handed to Kafka for sending."
    )
    _add(sent, [], snap.producer_totals.get("sent"))
    failed = _counter(
        "ecom_producer_events_failed_total",
        "Events the producer sent that Kafka did not acknowledge (retries exhausted, or "
        "unanswered at the end of a run).",
    )
    _add(failed, [], snap.producer_totals.get("failed"))
    return [rows_in, rows_out, batches, late, dead, restarts, sent, failed]


def query_families(snap: Snapshot) -> list[Metric]:
    """Per query: the figures of its newest progress record and the supervisor's verdict."""
    q = ("query",)
    f = {
        "input": _gauge(
            "ecom_query_input_rows_per_second",
            "Input rate of the query's last micro-batch (rows per second).",
            q,
        ),
        "processed": _gauge(
            "ecom_query_processed_rows_per_second",
            "Processing rate of the query's last micro-batch (rows per second).",
            q,
        ),
        "duration": _gauge(
            "ecom_query_batch_duration_seconds", "Duration of the query's last micro-batch.", q
        ),
        "state": _gauge(
            "ecom_query_state_rows",
            "Rows held in the query's state stores after its last micro-batch.",
            q,
        ),
        "batch": _gauge("ecom_query_last_batch_id", "Id of the query's last micro-batch.", q),
        "at": _gauge(
            "ecom_query_last_batch_timestamp_seconds",
            "When the query's last micro-batch started (Unix time): stale figures show here.",
            q,
        ),
        "lag": _gauge(
            "ecom_query_lag_records",
            "Records behind the input topic's end, as the supervisor last measured them.",
            q,
        ),
        "verdict": _gauge(
            "ecom_supervisor_verdict",
            "The supervisor's last verdict per query: 1 for the verdict it holds, 0 for the "
            "others.",
            ("query", "verdict"),
        ),
    }
    verdicts = {
        v["query"]: v
        for v in snap.health.get("queries", [])
        if isinstance(v, dict) and "query" in v
    }
    for query in snap.queries:
        labels = [query]
        record = snap.progress.get(query) or {}
        _add(f["input"], labels, record.get("inputRowsPerSecond"))
        _add(f["processed"], labels, record.get("processedRowsPerSecond"))
        duration = _number(record.get("batchDurationMs"))
        _add(f["duration"], labels, None if duration is None else duration / 1000)
        _add(f["state"], labels, record.get("stateRowsTotal"))
        _add(f["batch"], labels, record.get("batchId"))
        _add(f["at"], labels, _seconds(record.get("timestamp")))
        verdict = verdicts.get(query, {})
        _add(f["lag"], labels, verdict.get("total_lag"))
        held = verdict.get("state", "unknown")
        for name in dict.fromkeys((*VERDICTS, held)):  # a verdict added later still shows
            _add(f["verdict"], [query, str(name)], int(name == held))
    checked = _gauge(
        "ecom_supervisor_checked_timestamp_seconds",
        "When the supervisor last judged the queries (Unix time).",
    )
    _add(checked, [], snap.health.get("at"))
    return [*f.values(), checked]


def quality_families(snap: Snapshot) -> list[Metric]:
    """Per table: its newest quality result (status, checks by status, when)."""
    status = _gauge(
        "ecom_quality_status",
        "The table's last quality result: 1 for its status (pass, warn, fail), 0 for the others.",
        ("table", "status"),
    )
    checks = _gauge(
        "ecom_quality_checks",
        "Checks of the table's last quality result, by status.",
        ("table", "status"),
    )
    at = _gauge(
        "ecom_quality_checked_timestamp_seconds",
        "When the table's last quality result was recorded (Unix time).",
        ("table",),
    )
    for table, result in sorted(snap.quality.items()):
        held = result.get("status")
        for name in QUALITY_STATUSES:
            _add(status, [table, name], int(name == held))
            found = sum(1 for c in result.get("checks", []) if c.get("status") == name)
            _add(checks, [table, name], found)
        _add(at, [table], _seconds(result.get("at")))
    return [status, checks, at]


class SnapshotCollector(Collector):
    """prometheus_client's view of one :class:`Snapshot`: every ``ecom_*`` family."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        dead = _gauge(
            "ecom_dead_letter_rows",
            "Rows in the dead-letter table: malformed events quarantined with a reason.",
        )
        _add(dead, [], self.snap.dead_letter_rows)
        yield from counter_families(self.snap)
        yield from query_families(self.snap)
        yield from quality_families(self.snap)
        yield dead


def exposition(snap: Snapshot) -> str:
    """Every ``ecom_*`` metric of ``snap`` in the text exposition format (0.0.4), written by
    prometheus_client from a registry of this scrape's own (nothing of the process's
    default registry, nothing kept between scrapes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry).decode()


# ---------------------------------------------------------------- running totals


def add_totals(path: Path, deltas: Mapping[str, Any]) -> dict[str, Any]:
    """Add ``deltas`` (numbers, or one level of label -> number) to the totals in ``path``;
    the new totals.  Under an exclusive lock on ``<path>.lock``, so writers in several
    processes (two producer runs, the supervisor and the restart DAG) never lose each
    other's counts; the file is replaced atomically, so a scrape never reads half of it.
    A delta of 0 creates the entry: a counter shows at 0 before its first event."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        totals = _object(read_json(path, {}))
        for key, delta in deltas.items():
            if isinstance(delta, Mapping):
                inner = _object(totals.get(key))
                for label, n in delta.items():
                    inner[label] = _whole(inner.get(label)) + n
                totals[key] = inner
            else:
                totals[key] = _whole(totals.get(key)) + delta
        write_json(path, totals)
        return totals


def _whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def producer_totals_path(settings: Settings) -> Path:
    """Where producer runs add up the events they sent and the ones that failed."""
    return settings.paths.metrics_dir / PRODUCER_TOTALS_FILE


def count_restart(settings: Settings, by: str, restarts: int = 1) -> None:
    """Count a driver restart by ``by`` (one of :data:`RESTARTED_BY`); ``restarts=0`` only
    makes sure every counter exists, at 0 until the first restart."""
    add_totals(
        settings.paths.metrics_dir / RESTART_TOTALS_FILE,
        {"restarts": {who: restarts if who == by else 0 for who in RESTARTED_BY}},
    )


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
    metrics_dir = settings.paths.metrics_dir
    return Snapshot(
        progress=progress,
        health=health,
        quality=last_quality(settings),
        dead_letter_rows=dead_letter_count(settings),
        stream_totals=read_totals(metrics_dir),
        producer_totals=_object(read_json(metrics_dir / PRODUCER_TOTALS_FILE, {})),
        restart_totals=_object(read_json(metrics_dir / RESTART_TOTALS_FILE, {})),
    )


def _object(found: Any) -> dict[str, Any]:
    """``found`` if a JSON object was read, else empty (a file written by hand or cut)."""
    return found if isinstance(found, dict) else {}
