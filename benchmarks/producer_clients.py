"""The Kafka clients side by side, as a run of their own: confluent-kafka and kafka-python,
JSON and Avro, beside Kafka's Java producer (benchmarks/client_variants.py says how they
are measured).

    .venv/bin/python -m benchmarks.producer_clients [--events 400000] [--rounds 4] [--publish]

`make bench` runs this in its producer stage; alone, it starts a broker of its own and
writes state/bench/producer_clients/producer_clients.json, and with --publish
docs/benchmarks/producer_clients.json, which BENCHMARKS.md shows when the full run's
results have no such comparison.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from benchmarks.client_variants import compare, faster_client
from benchmarks.plans import FULL, SHORT
from benchmarks.published import publish_stage
from benchmarks.stages import stage_alone
from include.contract import iso_utc

STAGE = "producer_clients"


def main(argv: list[str] | None = None) -> int:
    """The client comparison alone; prints a line per producer."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{STAGE}")
    parser.add_argument("--events", type=int, default=FULL.client_events)
    parser.add_argument("--rounds", type=int, default=FULL.client_rounds)
    parser.add_argument(
        "--publish", action="store_true", help=f"write docs/benchmarks/{STAGE}.json too"
    )
    args = parser.parse_args(argv)
    with stage_alone(STAGE, SHORT, "1g") as bench:
        found = compare(bench.settings, bench.make_topic, args.events, args.rounds)
        out = bench.out / f"{STAGE}.json"
    measured = {"started": iso_utc(datetime.now(UTC)), **found}
    out.write_text(json.dumps(measured, indent=2) + "\n")
    if args.publish:
        publish_stage(STAGE, measured)
    for row in found["rows"]:
        runs = ", ".join(str(r) for r in row["runs"])
        print(
            f"{row['label']:55} {row['events_per_second']:>8} events/s "
            f"{row['ratio_to_java']:>6.3f} of Java  ({runs})"
        )
    for value_format, figures in found["formats"].items():
        print(
            f"encoding alone, {value_format}: {figures['encoding_events_per_second']} events/s, "
            f"{figures['mean_value_bytes']} bytes a value"
        )
    print(f"faster client: {faster_client(found)} (written to {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
