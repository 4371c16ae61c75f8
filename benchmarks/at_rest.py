"""The streaming application at the `make up` producer rate, the per-batch levers and the
floor rows side by side: its CPU and where each query's micro-batch goes (stage 6 of
`make bench`, alone; about 36 minutes).

    .venv/bin/python -m benchmarks.at_rest [--seconds 300] [--jfr]

Starts a Kafka broker of its own, runs each lever of the full plan's ``rest_levers`` on
the same producer rate, one after the other (``--seconds`` each, or the lever's own
``seconds``: the floor rows run 3 minutes), and writes
docs/benchmarks/at_rest.json, which BENCHMARKS.md shows when the full run has no stage 6
of its own (`python -m benchmarks.report` rewrites it).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from benchmarks import jfr_summary
from benchmarks.plans import FULL
from benchmarks.published import publish_stage
from benchmarks.stages import stage_alone


def main(argv: list[str] | None = None) -> int:
    """Stage 6 alone: writes docs/benchmarks/at_rest.json and prints each row's cores."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.at_rest")
    parser.add_argument("--seconds", type=float, default=FULL.rest_seconds)
    parser.add_argument(
        "--jfr",
        action="store_true",
        help="record each driver with Java Flight Recorder (from 60 s in) and summarise it",
    )
    args = parser.parse_args(argv)
    with stage_alone("at_rest", replace(FULL, rest_seconds=args.seconds), "3g") as bench:
        if args.jfr:
            bench.jfr_dir = bench.out
        bench.at_rest()
    found = {"started": bench.results["started"], "runs": bench.results["at_rest"]}
    if args.jfr:
        for n, run in enumerate(found["runs"]):
            # Written when the driver exits; the first minute (start-up) is left out.
            run["jfr"] = jfr_summary.summarise(jfr_summary.read_samples(bench.out / f"rest{n}.jfr"))
    publish_stage("at_rest", found)
    base = found["runs"][0]["cores"]
    for run in found["runs"]:
        print(f"{run['label']:70} {run['cores']:.3f} cores  {run['cores'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
