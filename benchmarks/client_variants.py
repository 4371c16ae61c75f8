"""The Kafka clients side by side: confluent-kafka (librdkafka) and kafka-python, each for
JSON and for Avro values, beside Kafka's own Java producer, all with the same settings
(include.kafka.client.PRODUCER_DEFAULTS: acks=all, idempotence, lz4, linger 20 ms, 256 KiB
batches, 5 requests in flight).

Every run is a process of its own (a fresh interpreter or JVM) sending to a fresh topic on
one broker; the runs are interleaved round after round, the Java producer first in each
round, so that noise on this shared machine hits them alike.  A Python run generates the
same events (the same seed and start) before its clock starts; encoding each event is
timed, as in the platform's producer.  The Java tool sends ready-made 300-byte records (as
stage 1 does).  Figures: the median over the rounds, and its ratio to the Java producer's.

Every clock includes the client's start, as the Java tool's does: connecting, and the
idempotent producer's id, which librdkafka obtains about 0.5 s after it starts (kafka-python
in about 0.15 s).  The full run's 400,000 events make that a small part of a run; in the
short plan's runs of a few thousand it is most of it.

`make bench` runs this in the producer stage; `python -m benchmarks.producer_clients` runs
it alone.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks import kafka_tools
from benchmarks.producers import (
    CLIENTS,
    FORMATS,
    bench_events,
    java_producer_props,
    timed_encoding,
    value_encoder,
)
from include.settings import Settings
from include.settings.base import PROJECT_ROOT

log = logging.getLogger("benchmarks.client_variants")

JAVA = "java"
JAVA_RECORD_SIZE = 300  # stage 1's records (benchmarks/stages.py RECORD_SIZE)
FORMAT_NAMES = {"json": "JSON", "avro": "Avro"}
# Encoding alone is timed on at most this many of the events (no Kafka, in this process).
ENCODING_SAMPLE = 50_000


@dataclass(frozen=True)
class ClientVariant:
    """One producer of the comparison: a Python client and a value format, or the Java
    tool ("java", its 300-byte records)."""

    client: str
    value_format: str

    @property
    def label(self) -> str:
        if self.client == JAVA:
            return f"Kafka ProducerPerformance (Java), {JAVA_RECORD_SIZE}-byte records"
        return f"{self.client}, {FORMAT_NAMES[self.value_format]}"


VARIANTS = (
    ClientVariant(JAVA, "bytes"),
    *(ClientVariant(client, value_format) for client in CLIENTS for value_format in FORMATS),
)


def timed_python(
    variant: ClientVariant, bootstrap: str, topic: str, events: int, start: datetime
) -> int:
    """Events/s of one Python client and format, in a fresh interpreter."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.producers",
        bootstrap,
        topic,
        str(events),
        "--client",
        variant.client,
        "--format",
        variant.value_format,
        "--start",
        str(start.timestamp()),
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{variant.label} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failed"] or result["events"] != events:
        raise RuntimeError(f"{variant.label}: {result}")
    return result["events_per_second"]


def timed_java(settings: Settings, topic: str, events: int) -> int:
    """Records/s of Kafka's Java producer with the platform's settings, in a fresh JVM."""
    found = kafka_tools.producer_performance(
        settings, topic, events, JAVA_RECORD_SIZE, java_producer_props()
    )
    return round(found.records_per_second)


def timed_variant(
    variant: ClientVariant, settings: Settings, topic: str, events: int, start: datetime
) -> int:
    """Events/s of one run of a variant."""
    if variant.client == JAVA:
        return timed_java(settings, topic, events)
    return timed_python(variant, settings.bootstrap_servers, topic, events, start)


def encoding(events: int, start: datetime) -> dict[str, dict]:
    """Per format, encoding alone (events/s, no Kafka) and the mean value size in bytes."""
    sample = bench_events(min(events, ENCODING_SAMPLE), start)
    found = {}
    for value_format in FORMATS:
        rate, size = timed_encoding(sample, value_encoder(value_format))
        found[value_format] = {"encoding_events_per_second": rate, "mean_value_bytes": size}
    return found


def compare(
    settings: Settings, make_topic: Callable[[str], None], events: int, rounds: int
) -> dict:
    """Every variant `rounds` times, interleaved: the median events/s of each, its runs and
    its ratio to the Java producer's median; the encoding figures of each format."""
    start = datetime.now(UTC) - timedelta(hours=1)
    rates: dict[ClientVariant, list[int]] = {v: [] for v in VARIANTS}
    for round_number in range(rounds):
        for n, variant in enumerate(VARIANTS):
            topic = f"bench-clients-{round_number}-{n}"
            make_topic(topic)
            rate = timed_variant(variant, settings, topic, events, start)
            log.info("round %d, %s: %d events/s", round_number + 1, variant.label, rate)
            rates[variant].append(rate)
    medians = {v: statistics.median(runs) for v, runs in rates.items()}
    java = medians[VARIANTS[0]]
    return {
        "events": events,
        "rounds": rounds,
        "java_record_size": JAVA_RECORD_SIZE,
        "formats": encoding(events, start),
        "rows": [
            {
                "label": v.label,
                "client": v.client,
                "format": v.value_format,
                "events": events,
                "events_per_second": round(medians[v]),
                "runs": rates[v],
                "ratio_to_java": round(medians[v] / java, 3),
            }
            for v in VARIANTS
        ],
    }


def faster_client(found: dict) -> str:
    """The Python client with the higher rate in every format, else "neither"."""
    rows = [r for r in found["rows"] if r["client"] != JAVA]
    by_format = {
        f: max((r for r in rows if r["format"] == f), key=lambda r: r["events_per_second"])
        for f in {r["format"] for r in rows}
    }
    winners = {r["client"] for r in by_format.values()}
    return winners.pop() if len(winners) == 1 else "neither"
