"""The one place that builds Kafka clients from platform settings: kafka-python 3.x for the
admin client, consumers and the tools' and tests' producers; confluent-kafka (librdkafka)
for the event producer, which must keep up with the input: with the same settings it sent
4.4 times kafka-python's events/s as JSON and 3.1 times as Avro, side by side
(benchmarks/client_variants.py, BENCHMARKS.md stage 2).

Callers pass the brokers (`Settings.bootstrap_servers`: `[kafka] bootstrap_servers`, or the
local broker); authentication (TLS, mutual TLS, SASL over TLS) comes from the settings'
`[kafka.security]` (passwords from the environment only, include/kafka/security.py).
Nothing here connects at import time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from include.kafka.security import confluent_options, kafka_client_options
from include.settings import get_settings

if TYPE_CHECKING:
    from confluent_kafka import Producer

# kafka-python 3 logs every bootstrap, connection and IO-loop start at INFO: twenty lines
# per supervisor round in the Airflow task log.  Warnings and errors still show; a level
# set on the "kafka" logger elsewhere is left alone.
if logging.getLogger("kafka").level == logging.NOTSET:
    logging.getLogger("kafka").setLevel(logging.WARNING)

# The producers' settings in kafka-python's names: its producers' (:func:`producer`), and
# through :func:`librdkafka_names` the event producer's (:func:`confluent_producer`) and
# the Java tool's the benchmark compares them with.
PRODUCER_DEFAULTS = {
    # Durability first: every in-sync replica acknowledges, and idempotence makes the
    # producer's own retries unable to duplicate or reorder a partition's records.
    "acks": "all",
    "enable_idempotence": True,
    "retries": 2_147_483_647,
    "delivery_timeout_ms": 120_000,
    "max_in_flight_requests_per_connection": 5,
    # Throughput: let records batch for a few ms and compress whole batches.  lz4, not
    # gzip: the benchmark (BENCHMARKS.md) measured gzip as kafka-python's busiest function
    # and lz4 at 1.4 times its rate; the crc32c package keeps kafka-python from computing
    # each batch's CRC-32C in pure Python (both: 1.75 times, benchmarks/producer_levers.py).
    "linger_ms": 20,
    "batch_size": 256 * 1024,
    "compression_type": "lz4",
}

# librdkafka's own settings besides PRODUCER_DEFAULTS: the partitioner of the Java client
# and kafka-python (murmur2 of the key), not librdkafka's default (CRC-32), so that a user's
# events land in the same partition whichever client sent them.
LIBRDKAFKA_PRODUCER_EXTRA = {"partitioner": "murmur2_random"}


def librdkafka_names(options: dict[str, Any]) -> dict[str, str]:
    """kafka-python's producer options under the Java client's and librdkafka's property
    names (acks, enable.idempotence, linger.ms, ...: both accept the same names for these),
    values as text."""
    return {
        name.replace("_", "."): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in options.items()
    }


def security() -> dict:
    """The client security options of the platform settings (none for PLAINTEXT)."""
    return kafka_client_options(get_settings())


def admin(bootstrap_servers: str, **overrides) -> KafkaAdminClient:
    """An admin client with the platform's security options; `overrides` win."""
    return KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="ecom-admin",
        **{**security(), **overrides},
    )


def producer(bootstrap_servers: str, **overrides) -> KafkaProducer:
    """A producer with :data:`PRODUCER_DEFAULTS` and the platform's security options;
    `overrides` win."""
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers, **{**PRODUCER_DEFAULTS, **security(), **overrides}
    )


def confluent_producer_config(
    bootstrap_servers: str, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """:data:`PRODUCER_DEFAULTS` in librdkafka's names, the murmur2 partitioner and the
    platform's security options (include/kafka/security.py); `overrides`, in librdkafka's
    names (``{"compression.type": "snappy"}``), win."""
    return {
        **librdkafka_names(PRODUCER_DEFAULTS),
        **LIBRDKAFKA_PRODUCER_EXTRA,
        **confluent_options(get_settings().kafka.security, bootstrap_servers),
        **(overrides or {}),
    }


def confluent_producer(bootstrap_servers: str, overrides: dict[str, Any] | None = None) -> Producer:
    """The event producer's client: confluent-kafka with :func:`confluent_producer_config`.
    librdkafka's log lines go to the "confluent_kafka" logger (served by poll() and flush()),
    not straight to stderr."""
    from confluent_kafka import Producer

    config = confluent_producer_config(bootstrap_servers, overrides)
    return Producer({**config, "logger": logging.getLogger("confluent_kafka")})


def consumer(bootstrap_servers: str, *topics: str, **overrides) -> KafkaConsumer:
    """A consumer of `topics` (none: assign partitions yourself) that reads from the earliest
    offset, commits nothing and stops iterating after 5 s without a record; `overrides` win.

    It reads committed records only: the streaming app writes its output topics in
    transactions, and a record of an aborted one (a batch cut short by a crash, sent again
    by the replay) is not part of the output."""
    options = {
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "consumer_timeout_ms": 5_000,
        "isolation_level": "read_committed",
    }
    options.update(security())
    options.update(overrides)
    return KafkaConsumer(*topics, bootstrap_servers=bootstrap_servers, **options)


def offsets_at(reader: KafkaConsumer, partitions: list, ms: int) -> dict:
    """Per partition, the first offset with a record time >= ms (the end if there is none)."""
    ends = reader.end_offsets(partitions)
    found = reader.offsets_for_times({tp: ms for tp in partitions})
    return {tp: (found[tp].offset if found.get(tp) else ends[tp]) for tp in partitions}


def read_to_end(
    bootstrap_servers: str, topic: str, timeout_s: float = 120.0, since_ms: int | None = None
) -> list:
    """Every record of `topic` from the beginning (or from record time `since_ms`) up to its
    end offsets at call time.

    Unlike iterating a consumer until it goes quiet, this ends on a topic that is still
    being written to.
    """
    import time

    from kafka import TopicPartition

    reader = consumer(bootstrap_servers, consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
        reader.assign(partitions)
        if since_ms is None:
            reader.seek_to_beginning(*partitions)
        else:
            for tp, offset in offsets_at(reader, partitions, since_ms).items():
                reader.seek(tp, offset)
        end = reader.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(reader.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s:.0f}s")
            for batch in reader.poll(timeout_ms=1000).values():
                records += [r for r in batch if r.offset < end[TopicPartition(topic, r.partition)]]
        return records
    finally:
        reader.close()


def end_offsets(bootstrap_servers: str, topic: str, **overrides) -> dict[str, dict[str, int]]:
    """Kafka's end offset per partition, shaped like Spark's source offsets; `overrides` go
    to the consumer."""
    from kafka import TopicPartition

    reader = consumer(bootstrap_servers, **overrides)
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
        ends = reader.end_offsets(partitions)
        return {topic: {str(tp.partition): int(offset) for tp, offset in ends.items()}}
    finally:
        reader.close()
