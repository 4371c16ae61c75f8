"""kafka-python's producer levers, side by side, as a run of their own: compression codec
and its CRC-32C (benchmarks/producer_variants.py says how they are measured).

    .venv/bin/python -m benchmarks.producer_levers [--events 200000] [--rounds 4]

`make bench` runs this as a stage of the full run; alone, it starts a broker of its own
and writes docs/benchmarks/producer_levers.json, which BENCHMARKS.md shows when the full
run's results have no such stage.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from benchmarks.plans import SHORT
from benchmarks.producer_variants import compare
from benchmarks.published import publish_stage
from benchmarks.stages import stage_alone
from include.contract import iso_utc


def main(argv: list[str] | None = None) -> int:
    """kafka-python's producer levers alone: writes docs/benchmarks/producer_levers.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.producer_levers")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    with stage_alone("producer_levers", SHORT, "1g") as bench:
        found = compare(
            bench.settings.bootstrap_servers, bench.make_topic, args.events, args.rounds
        )
    publish_stage("producer_levers", {"started": iso_utc(datetime.now(UTC)), "variants": found})
    for row in found:
        print(
            f"{row['label']:45} {row['events_per_second']:>8} events/s  {row['ratio_to_before']}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
