"""The Kafka side of the idle rule (:mod:`include.streaming.idle_close`) in the streaming
driver: read the newest record of the source, tell whether the query has read it all, write a
control record to the control topic."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.kafka.security import confluent_kafka_options
from include.settings import Settings
from include.streaming import checkpoints
from include.streaming.idle_close import (
    CONTROL_KEY,
    IdleCloser,
    Newest,
    control_value,
    idle_rule,
    newest_of,
)

log = logging.getLogger("streaming_app")

# How far back from a partition's end to look for a readable record (malformed ones are
# skipped: they have no event time).
LOOK_BACK = 20


class SourceTopics:
    """The query's source as the idle rule sees it (the input topic and the control topic),
    through confluent-kafka clients.  Offsets are keyed ``"<topic>/<partition>"``."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer, Producer

        options = confluent_kafka_options(settings)
        self.control_topic = settings.kafka.control_topic
        self.topics = (settings.kafka.input_topic, self.control_topic)
        self.naive_zone = settings.events.naive_timezone
        self.consumer = Consumer(
            {**options, "group.id": "ecom-idle-close", "enable.auto.commit": False}
        )
        self.producer = Producer({**options, "enable.idempotence": True, "acks": "all"})
        self.partitions = []
        for topic in self.topics:
            metadata = self.consumer.list_topics(topic, timeout=30)
            described = metadata.topics[topic]
            if described.error is not None:
                raise RuntimeError(
                    f"topic {topic} cannot be read ({described.error.str()}): the "
                    "provision_topics DAG creates it (make up runs it)"
                )
            self.partitions += [(topic, p) for p in sorted(described.partitions)]

    def _ends(self) -> dict[tuple[str, int], tuple[int, int]]:
        from confluent_kafka import TopicPartition

        return {
            (t, p): self.consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)
            for t, p in self.partitions
        }

    def end_offsets(self) -> dict[str, int]:
        """The next offset of every partition."""
        return {f"{t}/{p}": high for (t, p), (_, high) in self._ends().items()}

    def newest(self) -> Newest | None:
        """The record that reached Kafka last among the last readable record of every
        partition: an event, or a control record that continues a silence."""
        from confluent_kafka import TopicPartition

        found: list[Newest] = []
        for (topic, partition), (low, high) in self._ends().items():
            if high <= low:
                continue
            start = max(low, high - LOOK_BACK)
            self.consumer.assign([TopicPartition(topic, partition, start)])
            records: list[Any] = []
            while len(records) < high - start:
                batch = self.consumer.consume(int(high - start), timeout=5)
                if not batch:
                    break
                records += [r for r in batch if r.error() is None]
            for record in reversed(records):
                arrived = datetime.fromtimestamp(record.timestamp()[1] / 1000, UTC)
                newest = newest_of(record.key(), record.value(), arrived, self.naive_zone)
                if newest is not None:
                    found.append(newest)
                    break
        self.consumer.unassign()
        return max(found, key=lambda n: (n.arrived, n.event_time), default=None)

    def send(self, event_time: datetime, after: datetime) -> None:
        """Write one control record."""
        self.producer.produce(
            self.control_topic, key=CONTROL_KEY, value=control_value(event_time, after)
        )
        if self.producer.flush(30):
            raise RuntimeError("the control record was not acknowledged within 30 s")

    def close(self) -> None:
        """Close the clients."""
        self.producer.flush(10)
        self.consumer.close()


def read_offsets(query: Any, checkpoint: Path) -> dict[str, int] | None:
    """The offsets the query has read to (``"<topic>/<partition>"``): its last batch's end in
    this run, else the last committed batch of its checkpoint (None: nothing read yet)."""
    progress = query.lastProgress
    ends: dict[str, Any] = {}
    if progress:
        for source in progress.get("sources") or []:
            if isinstance(source.get("endOffset"), dict):
                ends.update(source["endOffset"])
    if not ends:
        ends = checkpoints.inspect(checkpoint).committed_offsets
    if not ends:
        return None
    return {f"{t}/{p}": int(o) for t, parts in ends.items() for p, o in parts.items()}


def start_idle_closer(
    settings: Settings, query: Any, checkpoint: Path
) -> tuple[IdleCloser, SourceTopics]:
    """Start the idle rule's thread for `query`; the caller stops it, then closes the topics'
    clients."""
    topics = SourceTopics(settings)
    closer = IdleCloser(
        idle_rule(settings.analytics),
        topics.end_offsets,
        topics.newest,
        lambda: read_offsets(query, checkpoint),
        topics.send,
    )
    log.info(
        "idle closing on: after %.0f s without a new event, event time moves on with the clock",
        settings.analytics.idle_close_seconds,
    )
    return closer.start(), topics
