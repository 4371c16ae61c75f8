"""What the quality checks know about the input topic: its newest record, its records
since a moment, how many arrived in a span.

:class:`KafkaInput` asks the broker; :class:`RecordsInput` answers from records held in
memory (a replay, a test).  Freshness, the dead-letter rate and the reconciliation of
revenue (:mod:`include.quality.reconciliation`) read the input through
:class:`InputSource`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from include.contract import parse_utc
from include.event_schema import is_framed
from include.kafka.client import consumer, offsets_at, read_to_end


@dataclass(frozen=True)
class SourceRecord:
    """One record of the input topic: where it sits, when it reached Kafka, its bytes."""

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
    """The input topic as the quality checks read it: a live broker or records in memory."""

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
        """The newest of the records held; None when there are none."""
        return newest_of(self.records, naive_zone)

    def records_since(self, since_ms: int) -> list[SourceRecord]:
        """The records held whose record time is >= since_ms."""
        return [r for r in self.records if r.timestamp_ms >= since_ms]

    def count_between(self, start_ms: int, end_ms: int) -> int:
        """How many records held have a record time in [start_ms, end_ms)."""
        return sum(start_ms <= r.timestamp_ms < end_ms for r in self.records)


class KafkaInput:
    """The input topic on a live broker (kafka-python; one short-lived consumer per call)."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        timeout_s: float = 120.0,
        avro: Callable[[bytes], dict | None] | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_s = timeout_s
        # Avro records (Confluent framing) are read as the JSON of their event, so the checks
        # judge both formats alike (include.registry.AvroDecoder); without it they stay bytes
        # no check can read.
        self.avro = avro

    def _record(self, r: Any) -> SourceRecord:
        value = r.value
        if self.avro and is_framed(value):
            event = self.avro(value)
            value = value if event is None else json.dumps(event, default=str).encode()
        return SourceRecord(r.partition, r.offset, int(r.timestamp), value)

    def _open(self):
        from kafka import TopicPartition

        reader = consumer(self.bootstrap_servers, consumer_timeout_ms=1000)
        partitions = [
            TopicPartition(self.topic, p) for p in reader.partitions_for_topic(self.topic) or []
        ]
        reader.assign(partitions)
        return reader, partitions

    def newest(self, naive_zone: str = "UTC") -> Newest | None:
        """The newest among each partition's last record; None when the topic holds no record."""
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
                    last += [self._record(r) for r in batch]
            return newest_of(last, naive_zone)
        finally:
            reader.close()

    def records_since(self, since_ms: int) -> list[SourceRecord]:
        """Records with record time >= since_ms, read up to the topic's end offsets at call time."""
        records = read_to_end(self.bootstrap_servers, self.topic, self.timeout_s, since_ms)
        return [self._record(r) for r in records if r.timestamp >= since_ms]

    def count_between(self, start_ms: int, end_ms: int) -> int:
        """Per partition, the offsets from the first record with record time >= start_ms to the
        first with record time >= end_ms, summed; no record is read."""
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
    return (
        Newest(record_ms, event_time) if record_ms is not None and event_time is not None else None
    )
