"""The Kafka side of the idle rule (:mod:`include.idle_close`) in the streaming driver: read the
newest record of the input topic, tell whether the query has read it all, write the control
record."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include import checkpoints
from include.idle_close import CONTROL_KEY, IdleCloser, Newest, control_value, idle_rule, newest_of
from include.settings import Settings

log = logging.getLogger("streaming_app")

# How far back from a partition's end to look for a readable record (malformed ones are
# skipped: they have no event time).
LOOK_BACK = 20


class InputTopic:
    """The input topic as the idle rule sees it, through confluent-kafka clients."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer, Producer

        options = settings.confluent_kafka_options()
        self.topic = settings.kafka.input_topic
        self.naive_zone = settings.events.naive_timezone
        self.consumer = Consumer(
            {**options, "group.id": "ecom-idle-close", "enable.auto.commit": False}
        )
        self.producer = Producer({**options, "enable.idempotence": True, "acks": "all"})
        metadata = self.consumer.list_topics(self.topic, timeout=30)
        self.partitions = sorted(metadata.topics[self.topic].partitions)

    def end_offsets(self) -> dict[str, int]:
        """The next offset of every partition."""
        from confluent_kafka import TopicPartition

        return {
            str(p): self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[
                1
            ]
            for p in self.partitions
        }

    def newest(self) -> Newest | None:
        """The newest readable record over all partitions: the largest event time among the
        last readable record of each, and the latest time one of those reached Kafka."""
        from confluent_kafka import TopicPartition

        found: list[Newest] = []
        for partition in self.partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10
            )
            if high <= low:
                continue
            start = max(low, high - LOOK_BACK)
            self.consumer.assign([TopicPartition(self.topic, partition, start)])
            records = []
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
        # The record that arrived last decides: a control record after the last event
        # continues the silence; an event after a control record ends it.
        return max(found, key=lambda n: (n.arrived, n.event_time), default=None)

    def send(self, event_time: datetime, after: datetime) -> None:
        """Write one control record (partition 0: the watermark is the query's, not a
        partition's)."""
        self.producer.produce(
            self.topic, key=CONTROL_KEY, value=control_value(event_time, after), partition=0
        )
        if self.producer.flush(30):
            raise RuntimeError("the control record was not acknowledged within 30 s")

    def close(self) -> None:
        """Close the clients."""
        self.producer.flush(10)
        self.consumer.close()


def read_offsets(query: Any, checkpoint: Path, topic: str) -> dict[str, int] | None:
    """The offsets the query has read to: its last batch's end in this run, else the last
    committed batch of its checkpoint (None: nothing read yet)."""
    progress = query.lastProgress
    if progress:
        for source in progress.get("sources") or []:
            end = source.get("endOffset")
            if isinstance(end, dict) and topic in end:
                return {str(p): int(o) for p, o in end[topic].items()}
    report = checkpoints.inspect(checkpoint)
    return report.committed_offsets.get(topic)


def start_idle_closer(
    settings: Settings, query: Any, checkpoint: Path
) -> tuple[IdleCloser, InputTopic]:
    """Start the idle rule's thread for `query`; the caller stops it, then closes the topic's
    clients."""
    topic = InputTopic(settings)
    closer = IdleCloser(
        idle_rule(settings.analytics),
        topic.end_offsets,
        topic.newest,
        lambda: read_offsets(query, checkpoint, topic.topic),
        topic.send,
    )
    log.info(
        "idle closing on: after %.0f s without a new event, event time moves on with the clock",
        settings.analytics.idle_close_seconds,
    )
    return closer.start(), topic
