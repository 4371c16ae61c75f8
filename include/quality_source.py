"""What the quality checks know about the input topic, and the revenue it implies.

:class:`KafkaInput` asks the broker; :class:`RecordsInput` answers from records held in
memory (a replay, a test).  :func:`expected_revenue` recomputes revenue per sliding window
and category from raw input records in plain Python, independently of the Spark job, so
the reconciliation check compares two separate computations.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol

import pandas as pd

from include.events import money, parse_utc
from include.kafka_client import consumer, offsets_at, read_to_end

PURCHASE = "purchase"


@dataclass(frozen=True)
class SourceRecord:
    partition: int
    offset: int
    timestamp_ms: int  # Kafka record time
    value: bytes | None


@dataclass(frozen=True)
class Newest:
    """The input topic's newest record: when it reached Kafka, and its event time."""

    record_ms: int
    event_time: datetime  # the record time when its own timestamp cannot be read


class InputSource(Protocol):
    def newest(self, naive_zone: str = "UTC") -> Newest | None:
        """The newest record on the input topic, or None when it is empty; a zone-less
        event time is read in ``naive_zone``."""

    def records_since(self, since_ms: int) -> Iterable[SourceRecord]:
        """Records with record time >= since_ms, up to the topic's end at call time."""

    def count_between(self, start_ms: int, end_ms: int) -> int:
        """How many records have a record time in [start_ms, end_ms)."""


class RecordsInput:
    """An input topic held in memory."""

    def __init__(self, records: Iterable[SourceRecord]) -> None:
        self.records = list(records)

    def newest(self, naive_zone: str = "UTC") -> Newest | None:
        return newest_of(self.records, naive_zone)

    def records_since(self, since_ms: int) -> list[SourceRecord]:
        return [r for r in self.records if r.timestamp_ms >= since_ms]

    def count_between(self, start_ms: int, end_ms: int) -> int:
        return sum(start_ms <= r.timestamp_ms < end_ms for r in self.records)


class KafkaInput:
    """The input topic on a live broker (kafka-python; one short-lived consumer per call)."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_s: float = 120.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_s = timeout_s

    def _open(self):
        from kafka import TopicPartition

        reader = consumer(self.bootstrap_servers, consumer_timeout_ms=1000)
        partitions = [
            TopicPartition(self.topic, p) for p in reader.partitions_for_topic(self.topic) or []
        ]
        reader.assign(partitions)
        return reader, partitions

    def newest(self, naive_zone: str = "UTC") -> Newest | None:
        reader, partitions = self._open()
        try:
            ends = reader.end_offsets(partitions)
            starts = reader.beginning_offsets(partitions)
            last: list[SourceRecord] = []
            for tp in partitions:
                if ends[tp] <= starts[tp]:
                    continue
                reader.assign([tp])
                reader.seek(tp, ends[tp] - 1)
                for batch in reader.poll(timeout_ms=5000).values():
                    last += [
                        SourceRecord(r.partition, r.offset, int(r.timestamp), r.value)
                        for r in batch
                    ]
            return newest_of(last, naive_zone)
        finally:
            reader.close()

    def records_since(self, since_ms: int) -> list[SourceRecord]:
        records = read_to_end(self.bootstrap_servers, self.topic, self.timeout_s, since_ms)
        return [
            SourceRecord(r.partition, r.offset, int(r.timestamp), r.value)
            for r in records
            if r.timestamp >= since_ms
        ]

    def count_between(self, start_ms: int, end_ms: int) -> int:
        reader, partitions = self._open()
        try:
            first = offsets_at(reader, partitions, start_ms)
            last = offsets_at(reader, partitions, end_ms)
            return sum(max(0, last[tp] - first[tp]) for tp in partitions)
        finally:
            reader.close()


def newest_of(records: Iterable[SourceRecord], naive_zone: str = "UTC") -> Newest | None:
    """The newest record time and the newest event time among ``records`` (a zone-less
    event time read in ``naive_zone``)."""
    record_ms, event_time = None, None
    for record in records:
        record_ms = max(record_ms or record.timestamp_ms, record.timestamp_ms)
        try:
            moment = parse_utc(json.loads(record.value or b"").get("timestamp"), naive_zone)
        except (ValueError, AttributeError):
            moment = None
        moment = moment or datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        event_time = max(event_time or moment, moment)
    return Newest(record_ms, event_time) if record_ms is not None else None


def _revenue(value: object) -> Decimal | None:
    """Revenue in cents, half up (float noise such as 3899.9700000000003 is not money)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return money(value)
    except InvalidOperation:
        return None


def expected_revenue(
    records: Iterable[SourceRecord],
    quarantined: set[tuple[int, int]],
    window_seconds: int,
    slide_seconds: int,
    naive_zone: str = "UTC",
) -> pd.DataFrame:
    """Revenue per (window_start, category) over the purchases in ``records``.

    A record the pipeline quarantined (its (partition, offset) is in ``quarantined``) is left
    out; so is a second record with an already seen event_id (retries, replays).  Windows
    are [start, start + window) every ``slide_seconds``, aligned to the epoch, as Spark's;
    a zone-less timestamp is the wall-clock time of ``naive_zone``.
    """
    totals: dict[tuple[datetime, str], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    seen: set[str] = set()
    window, slide = timedelta(seconds=window_seconds), slide_seconds
    for record in records:
        if (record.partition, record.offset) in quarantined or record.value is None:
            continue
        try:
            event = json.loads(record.value)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event_type") != PURCHASE:
            continue
        event_id, moment = event.get("event_id"), parse_utc(event.get("timestamp"), naive_zone)
        revenue, category = _revenue(event.get("revenue")), event.get("category")
        if moment is None or revenue is None or not isinstance(category, str):
            continue
        if event_id in seen:
            continue
        seen.add(event_id)
        epoch = int(moment.timestamp())
        start = epoch - epoch % slide
        while datetime.fromtimestamp(start, UTC) + window > moment:
            key = (datetime.fromtimestamp(start, UTC), category)
            totals[key] += revenue
            counts[key] += 1
            start -= slide
    rows = [
        {
            "window_start": key[0],
            "category": key[1],
            "total_revenue": total,
            "purchases": counts[key],
        }
        for key, total in totals.items()
    ]
    frame = pd.DataFrame(rows, columns=["window_start", "category", "total_revenue", "purchases"])
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    return frame
