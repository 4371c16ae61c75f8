"""The platform's benchmarks: how fast, against what ceiling, and how cost grows.

    make bench          # the full run, by hand (about 100 minutes on 2 cores): rewrites
                        # BENCHMARKS.md and docs/benchmarks/{results.json,benchmarks.png}
    make bench ARGS="--skip alone --skip at_rest"
                        # about 50 minutes: stages 3c and 6 shown from their own runs
                        # (python -m benchmarks.alone, python -m benchmarks.at_rest)
    make bench-short    # the CI smoke (a few minutes): the same stages, small numbers,
                        # written under state/bench/short/

Everything is measured in ONE run on one broker of its own (free ports), so every figure
sits beside the ceiling it is compared with (this machine is shared and noisy); a stage
left out with --skip is shown from its own run, which names itself:

1. Kafka's ceiling: ProducerPerformance and ConsumerPerformance (Kafka's own Java tools,
   same jars as the broker), 300-byte records, the platform's producer settings.
2. The platform's producer (confluent-kafka; acks=all, idempotence, compression)
   preloading the pipeline's input, and the tutorial's producer (`future.get()` after every
   send), as ratios to (1).  Then the Kafka clients side by side: confluent-kafka and
   kafka-python, JSON and Avro, each run a fresh process, interleaved with the Java
   producer's runs (benchmarks/client_variants.py; alone: python -m benchmarks.producer_clients).
3. Pipeline throughput: the streaming application, all analytics, from the earliest
   offset over the preloaded events; events/s from its progress records, as a ratio to
   the consumer ceiling.  In the full mode the levers (settings before and after, and
   the alternatives measured) run side by side first, on a smaller preload of their own;
   then (3c, target 3's floor) each query alone on the same preload.
4. Latency at steady input rates: producer and streaming application together; per
   analytic, p50/p95/p99 from the moment a row became final to the moment it is visible
   in the output topic and in the sink table (benchmarks/latency.py says exactly how).
   A rate above the measured pipeline throughput is not run: its backlog, and so its
   latency, would grow for as long as the run lasted.  At 2,000 events/s the before row
   of issue 14 runs too.
5. Scale: state rows, state memory and batch duration as distinct users grow.
6. At rest (full mode): the `make up` producer rate for five minutes, the per-batch levers
   before and after side by side, then the floor rows (FLOOR: the dead-letter branch alone
   at the 1 s and the 10 s trigger, every output at 1 s): the application's CPU (its
   whole process tree, per minute and by kind of thread, benchmarks/threads.py) and
   where each query's micro-batch goes (benchmarks/breakdown.py).  Every latency run
   reports the same.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

from benchmarks import report
from benchmarks.plans import FULL, SHORT, SKIPPABLE
from benchmarks.published import PUBLISHED
from benchmarks.stages import Bench, console_logs, fresh_dir
from include.settings.base import PROJECT_ROOT

log = logging.getLogger("benchmarks.run")


def main(argv: list[str] | None = None) -> int:
    """`make bench`: every stage of the plan, then the results, the plot and the markdown."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help="the CI smoke: small numbers")
    parser.add_argument("--events", type=int, help="override the preloaded event count")
    parser.add_argument("--out", type=Path, help="working directory (default state/bench/<mode>)")
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write BENCHMARKS.md and docs/benchmarks/ (default: in the full mode only)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=SKIPPABLE,
        help="leave a stage out: the report shows its own published run instead "
        "(`python -m benchmarks.alone`, about 30 minutes; `python -m benchmarks.at_rest`, 36)",
    )
    args = parser.parse_args(argv)
    console_logs()
    plan = SHORT if args.short else FULL
    if args.events:
        plan = replace(plan, events=args.events)
    out = fresh_dir((args.out or PROJECT_ROOT / "state" / "bench" / plan.mode).resolve())
    log.info("benchmarks (%s mode) in %s", plan.mode, out)
    results = Bench(plan, out, args.driver_memory).run(args.skip)
    publish = (plan.mode == "full") if args.publish is None else args.publish
    target_dir = PUBLISHED if publish else out
    target_dir.mkdir(parents=True, exist_ok=True)
    (target_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.write(results, target_dir)
    print(report.summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
