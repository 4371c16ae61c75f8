"""Backfill: recompute the analytics of one time interval from Kafka, exactly and repeatably.

For an interval [start, end) of event time, the backfill reads the input topic by record
timestamp from ``start - margin`` to ``end + margin`` (``backfill.margin_seconds``: room
for the longest window, the 30-minute session gap and attribution range, and events that
reached Kafka late), runs the streaming job's own transforms in batch, keeps the rows whose
time key lies in the interval and overwrites exactly that slice of the backfill tables
(``state/tables/backfill/<analytic>``): running it twice gives the same rows.

An interval Kafka's retention no longer fully covers is refused before anything is read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import TopicPartition

from include.jsonfile import write_json
from include.kafka.client import consumer
from include.settings import Settings

# Reconciliation reports: <metrics_dir>/backfill/<start>--<end>.json.
REPORT_DIR = "backfill"


# The run type of the DAG's own timetable runs (Airflow's DagRunType.SCHEDULED); backfill
# runs are "backfill", triggered ones "manual".
SCHEDULED_RUN = "scheduled"


def scheduled_run_skip_reason(run_type: object, on_schedule: bool) -> str | None:
    """Why a run of the backfill DAG does nothing, or None when it recomputes its interval.

    Only the DAG's own scheduled runs are governed by ``[backfill] on_schedule``: the DAG is
    never paused (Airflow runs nothing of a paused DAG, backfills included), so a backfill
    created with ``airflow backfill create`` or ``POST /api/v2/backfills`` always runs.
    """
    # The task SDK's DagRunType is a str Enum whose str() is "DagRunType.SCHEDULED".
    if getattr(run_type, "value", run_type) != SCHEDULED_RUN or on_schedule:
        return None
    return (
        "the backfill DAG's own schedule is off ([backfill] on_schedule = false), so this "
        "scheduled run does nothing; backfills and manual runs always recompute their "
        "interval. To recompute every interval as it ends, set on_schedule = true under "
        "[backfill] in config/platform.toml (or ECOM_BACKFILL__ON_SCHEDULE=true in the "
        "environment of `make up`); to recompute this one, backfill it with reprocess "
        "behaviour 'completed' (the README's command)."
    )


class IntervalNotRetained(RuntimeError):
    """Kafka no longer holds every event the interval needs."""


class NothingToBackfill(RuntimeError):
    """The input topic does not exist (yet): there are no events to recompute."""


@dataclass(frozen=True)
class Interval:
    """A half-open interval [start, end) of event time; ValueError if a bound has no time zone
    or the interval is empty."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must carry a time zone (use UTC)")
        if self.end <= self.start:
            raise ValueError(f"empty interval: end {self.end} is not after start {self.start}")

    @classmethod
    def parse(cls, start: str, end: str) -> Interval:
        """The interval between two ISO-8601 times (``Z`` accepted); a time without an offset is
        read as UTC."""

        def when(text: str) -> datetime:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

        return cls(when(start), when(end))

    def read_range(self, margin_seconds: int) -> tuple[int, int]:
        """Record-timestamp range to read, in epoch milliseconds."""
        margin = timedelta(seconds=margin_seconds)
        return (
            int((self.start - margin).timestamp() * 1000),
            int((self.end + margin).timestamp() * 1000),
        )

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def check_retention(bootstrap_servers: str, topic: str, interval: Interval, margin: int) -> None:
    """Refuse an interval whose events may already be deleted by retention.

    Per partition: if records were ever deleted (log start offset > 0) and the oldest record
    still held is newer than the start of the read range, events of the interval may be
    gone, and a backfill would silently undercount.
    """
    first_ms, _ = interval.read_range(margin)
    reader = consumer(bootstrap_servers, consumer_timeout_ms=5000)
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
        if not partitions:
            raise NothingToBackfill(
                f"topic {topic} does not exist yet (provision_topics creates it): "
                "no events, nothing to backfill"
            )
        starts = reader.beginning_offsets(partitions)
        ends = reader.end_offsets(partitions)
        for tp in partitions:
            if starts[tp] == 0:
                continue  # nothing ever deleted here
            oldest_ms = _timestamp_at(reader, tp, starts[tp]) if starts[tp] < ends[tp] else None
            if oldest_ms is None or oldest_ms > first_ms:
                held = (
                    datetime.fromtimestamp(oldest_ms / 1000, UTC).isoformat()
                    if oldest_ms is not None
                    else "nothing"
                )
                raise IntervalNotRetained(
                    f"Kafka no longer holds every event of interval {interval} (read from "
                    f"{datetime.fromtimestamp(first_ms / 1000, UTC).isoformat()}): partition "
                    f"{tp.partition} of {topic} has deleted records before offset {starts[tp]}, "
                    f"the oldest one left is from {held}. Backfill a later interval, or raise "
                    "kafka.retention_ms to keep more history for the future."
                )
    finally:
        reader.close()


def _timestamp_at(reader, tp: TopicPartition, offset: int) -> int | None:
    reader.assign([tp])
    reader.seek(tp, offset)
    for records in reader.poll(timeout_ms=10_000, max_records=1).values():
        for record in records:
            return int(record.timestamp)
    return None


def report_path(settings: Settings, interval: Interval) -> Path:
    """Where the reconciliation report of an interval is kept (one per interval: a rerun
    replaces it)."""
    name = f"{interval.start:%Y%m%dT%H%M%S}--{interval.end:%Y%m%dT%H%M%S}.json"
    return settings.paths.metrics_dir / REPORT_DIR / name


def write_report(
    settings: Settings,
    interval: Interval,
    analytics: dict[str, dict],
    airflow: dict[str, str] | None,
) -> Path:
    """Write the interval's reconciliation report (per analytic: rows written, compared,
    differences and which rows) with the Airflow run it belongs to; its path."""
    report = {
        "interval": str(interval),
        "start": interval.start.isoformat(),
        "end": interval.end.isoformat(),
        "written_at": datetime.now(UTC).isoformat(),
        "airflow": airflow,
        "analytics": analytics,
    }
    # Atomic: the page never reads half a report.
    return write_json(report_path(settings, interval), report)


def backfill_read_options(topic: str, partitions: int, interval: Interval, margin: int) -> dict:
    """Options of Spark's batch Kafka reader for the interval's read range."""
    first_ms, last_ms = interval.read_range(margin)

    def at(ms: int) -> str:
        return json.dumps({topic: {str(p): ms for p in range(partitions)}})

    return {
        "subscribe": topic,
        "startingOffsetsByTimestamp": at(first_ms),
        "endingOffsetsByTimestamp": at(last_ms),
        # A partition with no record at or after a timestamp starts/ends at its end.
        "startingOffsetsByTimestampStrategy": "latest",
        "failOnDataLoss": "true",
    }
