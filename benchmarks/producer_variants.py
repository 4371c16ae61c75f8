"""kafka-python's producer levers, side by side: compression codec and its CRC-32C.

kafka-python was the platform's producer until the client comparison
(benchmarks/client_variants.py) chose confluent-kafka; it is still the producer of the
tools and tests (include.kafka.client.producer), with these settings.  Each variant sends
the same generated events through kafka-python in a process of its own (kafka-python picks
its CRC-32C implementation at import time), on one broker, the variants interleaved round
after round so that noise hits them alike.  `make bench` runs this as a stage of the full
run; `python -m benchmarks.producer_levers` runs it alone.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from include.settings.base import PROJECT_ROOT

log = logging.getLogger("benchmarks.producer_variants")


@dataclass(frozen=True)
class ProducerVariant:
    """One producer setting: its compression codec, and the crc32c package or pure Python."""

    label: str
    compression: str
    crc32c_package: bool


VARIANTS = (
    ProducerVariant("before: gzip, CRC-32C in pure Python", "gzip", False),
    ProducerVariant("gzip, crc32c package", "gzip", True),
    ProducerVariant("PRODUCER_DEFAULTS: lz4, crc32c package", "lz4", True),
)


def timed_variant(variant: ProducerVariant, bootstrap: str, topic: str, events: int) -> int:
    """Events/s of one variant's run, in a fresh interpreter."""
    hide = "" if variant.crc32c_package else "sys.modules['crc32c'] = None\n"
    code = (
        "import sys\n"
        f"{hide}"
        "import include.kafka.client as k\n"
        f"k.PRODUCER_DEFAULTS['compression_type'] = {variant.compression!r}\n"
        "from benchmarks.producers import main\n"
        f"main([{bootstrap!r}, {topic!r}, '{events}', '--client', 'kafka-python'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{variant.label} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["events_per_second"]


def compare(
    bootstrap: str, make_topic: Callable[[str], None], events: int, rounds: int
) -> list[dict]:
    """Median events/s per variant over the rounds, and its ratio to the first variant."""
    rates: dict[str, list[int]] = {v.label: [] for v in VARIANTS}
    for round_number in range(rounds):
        for n, variant in enumerate(VARIANTS):
            topic = f"bench-producer-{round_number}-{n}"
            make_topic(topic)
            rate = timed_variant(variant, bootstrap, topic, events)
            log.info("round %d, %s: %d events/s", round_number + 1, variant.label, rate)
            rates[variant.label].append(rate)
    medians = {label: statistics.median(runs) for label, runs in rates.items()}
    base = medians[VARIANTS[0].label]
    return [
        {
            "label": v.label,
            "compression": v.compression,
            "crc32c_package": v.crc32c_package,
            "events": events,
            "events_per_second": round(medians[v.label]),
            "runs": rates[v.label],
            "ratio_to_before": round(medians[v.label] / base, 2),
        }
        for v in VARIANTS
    ]
