"""Target 3's floor: every query of the streaming application alone on the pipeline's
preload, beside all of them together (stage 3c of `make bench`, alone; about 30 minutes
at the full plan's 2 million events).

    .venv/bin/python -m benchmarks.alone [--events 2000000]

Starts a Kafka broker of its own, preloads the events with the platform's producer, runs
the application with all analytics (the pipeline row) and then each query by itself on
the same events, and writes docs/benchmarks/alone.json, which BENCHMARKS.md shows when
the full run has no stage 3c of its own (`python -m benchmarks.report` rewrites it).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from benchmarks.plans import FULL
from benchmarks.published import publish_stage
from benchmarks.stages import stage_alone


def main(argv: list[str] | None = None) -> int:
    """Stage 3c alone: writes docs/benchmarks/alone.json and prints each row."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alone")
    parser.add_argument("--events", type=int, default=FULL.events)
    args = parser.parse_args(argv)
    with stage_alone("alone", replace(FULL, events=args.events), "3g") as bench:
        bench.kafka_ceiling()
        bench.producers()
        bench.pipeline()
        bench.alone()
    found = {k: bench.results[k] for k in ("started", "pipeline", "alone")}
    publish_stage("alone", found)
    together = found["pipeline"]["events_per_second"]
    print(f"{'all analytics together':40} {together:>8,} events/s")
    for run in found["alone"]:
        print(f"{run['label']:40} {run['events_per_second']:>8,} events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
