"""The producers timed on the same broker: the platform's, kafka-python's and the tutorial's.

* platform: include.producer's own send path (the `producer` DAG's): confluent-kafka
  (librdkafka), asynchronous sends, acks=all, idempotence, compression, batching; the
  outcome of every send is counted from the delivery callbacks.
* kafka-python: the same events and settings (include.kafka.client.PRODUCER_DEFAULTS)
  through kafka-python's producer, the platform's producer until the client comparison
  (benchmarks/client_variants.py) measured it at a fraction of confluent-kafka's rate.
* tutorial: the original tutorial's loop, `producer.send(...).get()` after every event,
  with kafka-python's default settings: one round trip per event.

Events are generated beforehand (the Java tool, too, sends ready-made payloads); encoding
each event (JSON, or Avro in the Confluent wire format) is part of the timed send, as it is
in the `producer` DAG.  Encoding alone is timed beside it: the Python side's own ceiling.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer

from include.kafka.client import PRODUCER_DEFAULTS, confluent_producer, librdkafka_names, security
from include.kafka.client import producer as kafka_python_client
from include.producer import DeliveryStats, ValueEncoder, json_value, send_event

log = logging.getLogger("benchmarks.producers")

PLATFORM_CLIENT = "confluent-kafka"
CLIENTS = (PLATFORM_CLIENT, "kafka-python")
FORMATS = ("json", "avro")
# The schema id the Avro records are framed with: the benchmark registers nothing (a
# registry would only look the id up once per run).
BENCH_SCHEMA_ID = 1
# The seed of the client comparison's events (benchmarks.plans.SEED's value: importing the
# plans would load pandas into every timed process).
SEED = 2024


@dataclass(frozen=True)
class ProducerResult:
    events: int
    seconds: float
    events_per_second: int
    failed: int


def java_producer_props(options: dict = PRODUCER_DEFAULTS) -> dict[str, str]:
    """kafka-python's producer options as the Java client's properties (same meaning)."""
    return librdkafka_names(options)


def avro_encoder(schema_id: int = BENCH_SCHEMA_ID) -> ValueEncoder:
    """Events as Avro of the newest schema, framed in the Confluent wire format with
    `schema_id`: the producer's include.registry.AvroEncoder without a registry to look the
    id up in."""
    from include.event_schema import schema_text
    from include.registry import AvroWriter

    return AvroWriter(schema_text(), schema_id)


def value_encoder(value_format: str) -> ValueEncoder:
    """The record values of a format: compact JSON (the platform's) or framed Avro."""
    if value_format == "json":
        return json_value
    if value_format == "avro":
        return avro_encoder()
    raise ValueError(f"value format must be one of {', '.join(FORMATS)}, got {value_format!r}")


def _result(stats: DeliveryStats, seconds: float) -> ProducerResult:
    if stats.unanswered:
        raise RuntimeError(f"{stats.unanswered} sends never answered")
    return ProducerResult(stats.sent, round(seconds, 2), round(stats.sent / seconds), stats.failed)


def _timed_sends(
    name: str,
    client: Any,
    send: Callable[[dict, DeliveryStats], None],
    events: Iterable[dict],
    count: int,
) -> ProducerResult:
    """Send `count` events with `send` (which counts each in the stats); time until the
    client's flush has every answer; the client is closed whatever happens."""
    stats = DeliveryStats()
    report_every = max(count // 10, 1)
    began = time.perf_counter()
    try:
        for event in events:
            send(event, stats)
            if stats.sent % report_every == 0:
                log.info("%s producer: sent %d of %d events", name, stats.sent, count)
        client.flush()
        seconds = time.perf_counter() - began
    finally:
        client.close()
    return _result(stats, seconds)


def timed_platform_producer(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[dict],
    count: int,
    value: ValueEncoder = json_value,
) -> ProducerResult:
    """Send `count` events through the platform's producer (confluent-kafka, send_event);
    time until all are answered."""
    client = confluent_producer(bootstrap_servers)

    def send(event: dict, stats: DeliveryStats) -> None:
        send_event(client, topic, event, stats, value)

    return _timed_sends("platform", client, send, events, count)


def timed_kafka_python_producer(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[dict],
    count: int,
    value: ValueEncoder = json_value,
) -> ProducerResult:
    """Send `count` events through kafka-python with PRODUCER_DEFAULTS (the platform's
    producer before confluent-kafka); time until all are answered."""
    client = kafka_python_client(bootstrap_servers)

    def send(event: dict, stats: DeliveryStats) -> None:
        future = client.send(topic, key=event["user_id"].encode(), value=value(event))
        future.add_callback(stats.ok).add_errback(stats.error)
        stats.sent += 1

    return _timed_sends("kafka-python", client, send, events, count)


TIMED: dict[str, Callable[..., ProducerResult]] = {
    PLATFORM_CLIENT: timed_platform_producer,
    "kafka-python": timed_kafka_python_producer,
}


def timed_tutorial_producer(
    bootstrap_servers: str, topic: str, events: Iterable[dict]
) -> ProducerResult:
    """The tutorial's loop: block on every send's future."""
    client = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
        **security(),
    )
    sent = 0
    began = time.perf_counter()
    try:
        for event in events:
            client.send(topic, value=event).get(timeout=10)
            sent += 1
        seconds = time.perf_counter() - began
    finally:
        client.close()
    return ProducerResult(sent, round(seconds, 2), round(sent / seconds), 0)


def timed_encoding(events: Iterable[dict], value: ValueEncoder = json_value) -> tuple[int, float]:
    """Events/s of encoding alone (no Kafka), and the mean encoded value size in bytes."""
    began = time.perf_counter()
    count = size = 0
    for event in events:
        size += len(value(event))
        count += 1
    return round(count / (time.perf_counter() - began)), round(size / count, 1)


def bench_events(count: int, start: datetime) -> list[dict]:
    """The events every producer run of the client comparison sends: the same seed, users
    and start, so every process generates the same events."""
    from include.generators import EventGenerator

    generator = EventGenerator(seed=SEED, users=20_000, products=500)
    return list(generator.stream(start, timedelta(milliseconds=10), count))


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.producers BOOTSTRAP TOPIC COUNT [--client C] [--format F]`: one
    producer run in a process of its own, its result as a JSON line (the client comparison
    runs each client and format so; benchmarks/producer_profile.py samples it with py-spy)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.producers")
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("count", type=int)
    parser.add_argument("--client", choices=CLIENTS, default=PLATFORM_CLIENT)
    parser.add_argument("--format", choices=FORMATS, default="json", dest="value_format")
    parser.add_argument(
        "--start", type=float, help="the first event's time, epoch seconds (default: 1 h ago)"
    )
    args = parser.parse_args(argv)
    start = (
        datetime.fromtimestamp(args.start, UTC)
        if args.start is not None
        else datetime.now(UTC) - timedelta(hours=1)
    )
    # Generated and the encoder built before the clock starts.
    events = bench_events(args.count, start)
    value = value_encoder(args.value_format)
    result = TIMED[args.client](args.bootstrap, args.topic, events, len(events), value)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
