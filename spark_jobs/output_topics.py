"""The Kafka side of the pipeline's sink: every output topic written in one Kafka
transaction per batch, exactly once for ``read_committed`` consumers
(:class:`TransactionalTopics`), each call bounded in time (:func:`bounded`); and the Kafka
record (key, value) of an output row (:func:`kafka_key_value`, :func:`to_kafka_records`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType, TimestampType

# Kafka record keys render timestamps this way (the same pattern to_json uses).
KEY_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"

# Every line the driver logs carries the application's name (tests and users grep it).
log = logging.getLogger("streaming_app")


# How often a batch's Kafka transaction is tried before the batch fails (the query then
# stops, and the supervisor restarts it).
SEND_TRIES = 5

# How much longer than its own timeout a transactional call may block before the producer
# is given up: librdkafka's send_offsets_to_transaction can block past its timeout while
# the group coordinator is away (a broker restart; confluentinc/librdkafka#5456). A call
# that works returns by its timeout, with or without an error: past it, waiting longer
# only delays the recovery (15 s did, by 10 s of every broker restart).
STUCK_GRACE_SECONDS = 5.0


class StuckCall(Exception):
    """A Kafka client call that did not return in its time."""


def bounded(call: Callable[[], Any], seconds: float, what: str) -> Any:
    """`call()` in a thread of its own, given up after `seconds`: :class:`StuckCall` then,
    and the thread is left to end whenever the client lets it."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"kafka-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise StuckCall(f"{what} did not return in {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# Fault injection for the crash tests: the batch id at which the driver kills itself (its
# whole process group, like kill -9) with the batch's records in Kafka, not yet committed.
KILL_IN_TOPIC_WRITE = "ECOM_TEST_KILL_IN_TOPIC_WRITE"


def fault_point(variable: str, batch_id: int, producer: Any, state_dir: Path) -> None:
    """Kill the driver here, once, when the environment asks for it at this batch; a file
    in the state dir marks that it happened."""
    wanted = os.environ.get(variable)
    if wanted is None or int(wanted) != batch_id:
        return
    marker = state_dir / f".{variable.lower()}-{batch_id}"
    if marker.exists():
        return
    marker.touch()
    producer.flush(30)  # the records are in the log, their transaction still open
    log.warning("fault injection: killing the driver inside batch %d's topic write", batch_id)
    os.killpg(os.getpgid(0), signal.SIGKILL)


class TransactionalTopics:
    """Writes a batch's records to the output topics in one Kafka transaction, at most once
    per batch.

    The transactional id and the consumer group are the pipeline's (``<prefix>-<checkpoint
    query id>``): a restarted driver fences its predecessor and finds what it committed.  The
    batch id rides in the same transaction as the group's committed offsets (the input
    offsets the batch read up to, so Kafka's tools show how far the outputs are) with
    ``<query id>:<batch id>`` as their metadata.
    """

    def __init__(
        self,
        options: Mapping[str, str],
        name: str,
        input_topic: str,
        state_dir: Path,
        timeout_seconds: float,
    ) -> None:
        from confluent_kafka import Consumer

        self.name = name
        self.input_topic = input_topic
        self.state_dir = state_dir
        self.options = {
            **options,
            "transactional.id": name,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            # A batch's writes take seconds; a driver that died mid-transaction is aborted
            # by its successor's init_transactions long before this.
            "transaction.timeout.ms": 120_000,
        }
        # Each transactional call's own timeout (a commit gets twice this; [kafka]
        # transaction_call_timeout_seconds). A healthy call returns in milliseconds; after a
        # broker restart a stuck one holds every output until it is given up, so this is most
        # of the recovery (60 s made it ~100 s).
        self.timeout_seconds = timeout_seconds
        self.producer = self._new_producer()
        self.consumer = Consumer(
            {
                **options,
                "group.id": name,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.group = self.consumer.consumer_group_metadata()

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer

        producer = Producer(self.options)
        wait = self.timeout_seconds
        bounded(lambda: producer.init_transactions(wait), wait + STUCK_GRACE_SECONDS, "init")
        return producer

    def last_batch(self, query_id: str) -> int | None:
        """The newest batch id committed by this checkpoint's pipeline (None: none yet)."""
        from confluent_kafka import TopicPartition

        (committed,) = self.consumer.committed([TopicPartition(self.input_topic, 0)], timeout=30)
        marker = committed.metadata or ""
        owner, _, batch = marker.rpartition(":")
        if owner != query_id or not batch.isdigit():
            return None
        return int(batch)

    def send(
        self,
        records: Sequence[tuple[str, bytes, bytes]],
        query_id: str,
        batch_id: int,
        read_up_to: Mapping[str, int],
    ) -> bool:
        """Send ``(topic, key, value)`` records as batch `batch_id`; False when that batch
        was committed before (a replay).

        A broker that restarts or moves its coordinator fails a transaction: it is aborted
        (a fatal error: the producer is made anew, which fences the old one) and sent again,
        up to :data:`SEND_TRIES` times, before the error fails the batch."""
        from confluent_kafka import KafkaException

        for attempt in range(1, SEND_TRIES + 1):
            try:
                done = self.last_batch(query_id)
                if done is not None and done >= batch_id:
                    return False
                self._transaction(records, query_id, batch_id, read_up_to)
                return True
            except (KafkaException, StuckCall) as failure:
                error = failure.args[0] if failure.args else None
                if attempt == SEND_TRIES:
                    raise
                log.warning(
                    "batch %d: the Kafka transaction failed (%s); sending it again (try %d of %d)",
                    batch_id,
                    error,
                    attempt + 1,
                    SEND_TRIES,
                )
                try:
                    self._recover(failure)
                except (KafkaException, StuckCall) as still:  # the next try starts anew
                    log.warning(
                        "batch %d: the Kafka producer did not recover yet (%s)", batch_id, still
                    )
                time.sleep(min(30.0, 2.0**attempt))
        return True  # not reached: the last try returns or raises

    def _transaction(
        self,
        records: Sequence[tuple[str, bytes, bytes]],
        query_id: str,
        batch_id: int,
        read_up_to: Mapping[str, int],
    ) -> None:
        from confluent_kafka import TopicPartition

        self.producer.begin_transaction()
        for topic, key, value in records:
            while True:
                try:
                    self.producer.produce(topic, value=value, key=key)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.1)
            self.producer.poll(0)
        marker = f"{query_id}:{batch_id}"
        offsets = [
            TopicPartition(self.input_topic, int(p), int(o), metadata=marker)
            for p, o in sorted(read_up_to.items(), key=lambda item: int(item[0]))
        ] or [TopicPartition(self.input_topic, 0, 0, metadata=marker)]
        producer, wait = self.producer, self.timeout_seconds
        bounded(
            lambda: producer.send_offsets_to_transaction(offsets, self.group, wait),
            wait + STUCK_GRACE_SECONDS,
            "send-offsets",
        )
        fault_point(KILL_IN_TOPIC_WRITE, batch_id, self.producer, self.state_dir)
        # A commit waits for the batch's records to be acknowledged too: twice as long.
        bounded(
            lambda: producer.commit_transaction(2 * wait), 2 * wait + STUCK_GRACE_SECONDS, "commit"
        )

    def _recover(self, failure: Exception) -> None:
        """After a failed transaction: abort it, or make a new producer when the old one
        cannot go on (a fatal error, or a call that never returned: the new producer's
        init_transactions fences the old one and aborts its open transaction)."""
        from confluent_kafka import KafkaException

        error = failure.args[0] if failure.args else None
        if isinstance(failure, StuckCall) or (error is not None and error.fatal()):
            self.producer = self._new_producer()
            return
        producer, wait = self.producer, self.timeout_seconds
        try:
            bounded(lambda: producer.abort_transaction(wait), wait + STUCK_GRACE_SECONDS, "abort")
        except (KafkaException, StuckCall):
            self.producer = self._new_producer()

    def close(self) -> None:
        """Flush and close the clients."""
        self.producer.flush(10)
        self.consumer.close()


def to_kafka_records(df: DataFrame, key_columns: Sequence[str]) -> DataFrame:
    """``key``/``value`` (binary) records for the Kafka sink.

    The key joins ``key_columns`` with ``|`` (timestamps as ISO-8601, e.g.
    ``Books|2026-01-01T12:00:00.000Z`` in a UTC session), so a replayed row gets the same
    key and consumers can dedupe; the value is the whole row as JSON.
    """
    return df.select(*kafka_key_value(df, key_columns))


def kafka_key_value(df: DataFrame, key_columns: Sequence[str]) -> list[Column]:
    """The ``key`` and ``value`` columns of :func:`to_kafka_records`."""
    types = dict((field.name, field.dataType) for field in df.schema.fields)
    parts = []
    for name in key_columns:
        column = F.col(name)
        if isinstance(types[name], (TimestampType, TimestampNTZType)):
            rendered = F.date_format(column, KEY_TIMESTAMP_FORMAT)
        else:
            rendered = column.cast("string")
        # concat_ws skips nulls, which would make "a|null" and "null|a" collide.
        parts.append(F.coalesce(rendered, F.lit("")))
    return [
        F.concat_ws("|", *parts).cast("binary").alias("key"),
        F.to_json(F.struct(*[F.col(c) for c in df.columns])).cast("binary").alias("value"),
    ]
