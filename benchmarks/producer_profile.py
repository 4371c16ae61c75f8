"""Where the platform producer's time goes: py-spy samples a run of it
(`python -m benchmarks.producers`) and the raw stacks are summed up."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

from include.settings.base import PROJECT_ROOT

log = logging.getLogger("benchmarks.producer_profile")


def record(bootstrap_servers: str, topic: str, count: int, raw: Path) -> str:
    """py-spy's raw (collapsed) stacks of the platform producer sending `count` events,
    written to `raw` and returned."""
    command = [
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--format",
        "raw",
        "--rate",
        "200",
        "--output",
        str(raw),
        "--",
        sys.executable,
        "-m",
        "benchmarks.producers",
        bootstrap_servers,
        topic,
        str(count),
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
    # py-spy may exit 1 when the sampled process ends between two samples, the stacks
    # written: only a run without stacks failed.
    if not raw.exists() or not raw.stat().st_size:
        raise RuntimeError(
            f"py-spy wrote no stacks (exit {done.returncode}): {done.stderr[-2000:]}"
        )
    if done.returncode:
        log.warning("py-spy exited %d, its stacks written: %s", done.returncode, done.stderr[-500:])
    return raw.read_text()


# Frames under which a sample counts as Avro encoding: fastavro's, and the encoders' own.
AVRO = re.compile(r"[(/]fastavro/|^(encode_avro|to_avro_record) \(")
# Frames under which a sample counts as the Kafka client's: the Python clients' own code,
# and the platform's send and delivery-callback functions (py-spy does not see into
# librdkafka: the time of its C calls is its Python caller's own).
KAFKA_CLIENT = re.compile(
    r"[(/](kafka|confluent_kafka)/|^(send_event|delivered) \(include/producer\.py"
)


def profile_summary(raw: str, top: int = 10) -> dict:
    """py-spy's raw (collapsed) stacks: the functions with the most samples on top of the
    stack, and the share of samples under generation, encoding and the Kafka client."""
    own: dict[str, int] = {}
    under = {"generate events": 0, "encode JSON": 0, "encode Avro": 0, "Kafka client": 0}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        if any("include/generators.py" in f for f in frames):
            under["generate events"] += count
        elif any(re.search(r"[(/]json/", f) for f in frames):
            under["encode JSON"] += count
        elif any(AVRO.search(f) for f in frames):
            under["encode Avro"] += count
        elif any(KAFKA_CLIENT.search(f) for f in frames):
            under["Kafka client"] += count
    ranked = sorted(own.items(), key=lambda item: -item[1])[:top]
    return {
        "samples": total,
        "share_under": {k: round(v / max(total, 1), 3) for k, v in under.items()},
        "top_own": [{"frame": f, "share": round(c / max(total, 1), 3)} for f, c in ranked],
    }
