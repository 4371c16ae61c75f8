"""Which client writes the pipeline's per-batch Kafka transaction faster: confluent-kafka
(librdkafka) or kafka-python, side by side on a broker of its own.

    .venv/bin/python -m benchmarks.transactions [--batches 40] [--rows 100 2000]

A batch is what spark_jobs/output_topics.TransactionalTopics sends: begin a transaction, produce the
batch's rows spread over the five analytics' topics (JSON values of ~300 bytes, lz4), send the
input offsets with their batch marker to the transaction, commit.  The two clients take
turns batch by batch (the machine is shared and noisy), each with its own transactional id,
and the median milliseconds per batch are printed with their ratio.  Writes
docs/benchmarks/transactions.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.published import PUBLISHED
from include.analytics import ANALYTIC_NAMES
from include.kafka.topics import provision
from include.runtime.kafka import Kafka
from include.runtime.procs import free_port
from include.settings import Settings

INPUT_PARTITIONS = 3
VALUE = json.dumps({"window_start": "2026-12-07T00:00:00.000Z", "pad": "x" * 240}).encode()


def confluent_writer(servers: str, topics: list[str], source: str) -> Callable[[int, int], None]:
    """A batch writer on confluent-kafka, as the pipeline's sink sets it up."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer(
        {
            "bootstrap.servers": servers,
            "transactional.id": "bench-confluent",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(60)
    group = Consumer({"bootstrap.servers": servers, "group.id": "bench-confluent"})
    metadata = group.consumer_group_metadata()

    def write(batch: int, rows: int) -> None:
        producer.begin_transaction()
        for n in range(rows):
            producer.produce(topics[n % len(topics)], value=VALUE, key=f"{batch}-{n}".encode())
            producer.poll(0)
        offsets = [
            TopicPartition(source, p, batch * 100, metadata=f"bench:{batch}")
            for p in range(INPUT_PARTITIONS)
        ]
        producer.send_offsets_to_transaction(offsets, metadata, 30)
        producer.commit_transaction(60)

    return write


def kafka_python_writer(servers: str, topics: list[str], source: str) -> Callable[[int, int], None]:
    """The same batch on kafka-python's transactional producer."""
    from kafka import KafkaProducer
    from kafka.structs import OffsetAndMetadata, TopicPartition

    producer = KafkaProducer(
        bootstrap_servers=servers,
        transactional_id="bench-kafka-python",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        compression_type="lz4",
    )
    producer.init_transactions()

    def write(batch: int, rows: int) -> None:
        producer.begin_transaction()
        for n in range(rows):
            producer.send(topics[n % len(topics)], value=VALUE, key=f"{batch}-{n}".encode())
        offsets = {
            TopicPartition(source, p): OffsetAndMetadata(batch * 100, f"bench:{batch}", -1)
            for p in range(INPUT_PARTITIONS)
        }
        producer.send_offsets_to_transaction(offsets, "bench-kafka-python")
        producer.commit_transaction()

    return write


def measure(settings: Settings, batches: int, sizes: list[int]) -> dict:
    """Median ms per batch of each client, at each batch size, the clients alternating."""
    topics = [settings.output_topic(name) for name in ANALYTIC_NAMES]
    servers, source = settings.bootstrap_servers, settings.kafka.input_topic
    writers = {
        "confluent-kafka": confluent_writer(servers, topics, source),
        "kafka-python": kafka_python_writer(servers, topics, source),
    }
    found = {}
    for rows in sizes:
        times: dict[str, list[float]] = {name: [] for name in writers}
        for batch in range(batches + 3):  # the first three warm the clients up
            for name, write in writers.items():
                started = time.perf_counter()
                write(batch, rows)
                if batch >= 3:
                    times[name].append((time.perf_counter() - started) * 1000)
        medians = {name: round(statistics.median(ms), 1) for name, ms in times.items()}
        ratio = round(medians["kafka-python"] / medians["confluent-kafka"], 2)
        found[str(rows)] = {"median_ms": medians, "kafka_python_over_confluent": ratio}
        print(
            f"{rows:>6} rows a batch: "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in medians.items())
            + f" (kafka-python / confluent-kafka: {ratio})"
        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transactions", description=__doc__)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 2_000])
    parser.add_argument("--out", type=Path, default=PUBLISHED / "transactions.json")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="transactions-"))
    os.environ.update(
        {
            "ECOM_STATE_DIR": str(base),
            "ECOM_KAFKA__PORT": str(free_port()),
            "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
        }
    )
    settings = Settings()
    broker = Kafka(settings)
    broker.start()
    try:
        provision(settings)
        found = measure(settings, args.batches, args.rows)
    finally:
        broker.stop(timeout=30)
    args.out.write_text(json.dumps({"batches": args.batches, "sizes": found}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
