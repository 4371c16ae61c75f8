"""The platform's producer and the tutorial's, timed on the same broker.

* platform: include.producer's own send path (the `producer` DAG's): JSON encoding,
  asynchronous sends, acks=all, idempotence, compression, batching; the outcome of every
  send is counted from the broker's answers.
* tutorial: the original tutorial's loop, `producer.send(...).get()` after every event,
  with kafka-python's default settings: one round trip per event.

Events are generated beforehand (the Java tool, too, sends ready-made payloads); encoding
each event to JSON is part of the timed send, as it is in the `producer` DAG.  Encoding
alone is timed beside it: the Python side's own ceiling.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from kafka import KafkaProducer

from include.kafka.client import PRODUCER_DEFAULTS, security
from include.kafka.client import producer as platform_client
from include.producer import DeliveryStats, encode, send_event

log = logging.getLogger("benchmarks.producers")


@dataclass(frozen=True)
class ProducerResult:
    events: int
    seconds: float
    events_per_second: float
    failed: int


def java_producer_props(options: dict = PRODUCER_DEFAULTS) -> dict[str, str]:
    """kafka-python's producer options as the Java client's properties (same meaning)."""
    props = {}
    for name, value in options.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        props[name.replace("_", ".")] = text
    return props


def timed_platform_producer(
    bootstrap_servers: str, topic: str, events: Iterable[dict], count: int
) -> ProducerResult:
    """Send `count` events through the platform's producer; time until all are acknowledged."""
    client = platform_client(bootstrap_servers)
    stats = DeliveryStats()
    report_every = max(count // 10, 1)
    began = time.perf_counter()
    try:
        for event in events:
            send_event(client, topic, event, stats)
            if stats.sent % report_every == 0:
                log.info("platform producer: sent %d of %d events", stats.sent, count)
        client.flush()
        seconds = time.perf_counter() - began
    finally:
        client.close()
    if stats.acknowledged + stats.failed != stats.sent:
        raise RuntimeError(f"{stats.sent - stats.acknowledged} sends never answered")
    return ProducerResult(stats.sent, round(seconds, 2), round(stats.sent / seconds), stats.failed)


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


def timed_encoding(events: Iterable[dict]) -> tuple[float, float]:
    """Events/s of encoding alone (no Kafka), and the mean encoded value size in bytes."""
    began = time.perf_counter()
    count = size = 0
    for event in events:
        size += len(encode(event)[1])
        count += 1
    return round(count / (time.perf_counter() - began)), round(size / count, 1)


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.producers BOOTSTRAP TOPIC COUNT`: the platform producer alone,
    for a profiler to watch (benchmarks/producer_profile.py samples it with py-spy)."""
    import sys
    from datetime import UTC, datetime, timedelta

    from include.generators import EventGenerator

    bootstrap, topic, count = (argv or sys.argv[1:])[:3]
    start = datetime.now(UTC) - timedelta(hours=1)
    generator = EventGenerator(seed=1, users=20_000, products=500)
    events = list(generator.stream(start, timedelta(milliseconds=10), int(count)))
    result = timed_platform_producer(bootstrap, topic, events, len(events))
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
