"""The benchmark results as BENCHMARKS.md, a PNG plot and a console summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from benchmarks import breakdown
from benchmarks.latency import LATENCY_ANALYTICS, worst_p95
from benchmarks.plans import AFTER
from benchmarks.published import PUBLISHED, published_stage
from benchmarks.targets import (
    BACKLOG_TARGET,
    REST_CORES_TARGET,
    defaults_at_rest,
    defaults_latency,
)
from include.settings import PROJECT_ROOT

COMMAND = {"full": "make bench", "short": "make bench-short"}


def _n(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def markdown(results: dict, plot: Path) -> str:
    m = results["machine"]
    ceiling = results["kafka_ceiling"]
    producer = results["producer"]
    out = [
        "# Benchmarks",
        "",
        f"Written by `{COMMAND[results['mode']]}` ({results['mode']} mode, "
        f"{results['seconds'] / 60:.0f} minutes) on {results['started'][:10]}. Every figure "
        "below comes from the same run on one broker, but for the sections that name a "
        "separate run of their own, so each sits beside the ceiling it is compared with; "
        "this machine is shared and noisy, so trust ratios over absolute numbers.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}. "
        f"Versions: Kafka {m['kafka']}, PySpark {m['pyspark']}, delta-spark "
        f"{m['delta-spark']}, kafka-python {m['kafka-python']}, Python {m['python']}, "
        f"{m['java']}.",
        "",
        f"![benchmarks]({os.path.relpath(plot, start=_markdown_dir(results, plot))})",
        "",
        *(
            [
                "**Short mode**: small counts, so JVM start-up and first micro-batches "
                "dominate every figure. It proves the command works end to end; `make bench` "
                "measures the platform.",
                "",
            ]
            if results["mode"] == "short"
            else []
        ),
        "## Targets",
        "",
    ]
    out += _table(
        ["target", "goal", "measured", "met"],
        [
            [
                t["name"],
                t["target"],
                _n(
                    t["measured"],
                    3 if isinstance(t["measured"], float) and t["measured"] < 100 else 0,
                ),
                "yes" if t["met"] else "**no**",
            ]
            for t in results["targets"]
        ],
    )
    out += [
        "## 1 and 2. Producers against Kafka's own",
        "",
        f"{ceiling['record_size']}-byte records for the Java tool; the platform's events "
        f"average {producer['mean_value_bytes']:.0f} bytes of JSON. The Java tool runs with "
        "the platform's producer settings: "
        + ", ".join(f"`{k}={v}`" for k, v in ceiling["producer_props"].items())
        + ".",
        "",
    ]
    java = ceiling["producer"]["records_per_second"]
    out += _table(
        ["producer", "events", "events/s", "ratio to Java producer"],
        [
            [
                "Kafka ProducerPerformance (Java)",
                _n(ceiling["producer"]["records"]),
                _n(java),
                "1.000",
            ],
            [
                "platform (async, acks=all, idempotent, lz4)",
                _n(producer["platform"]["events"]),
                _n(producer["platform"]["events_per_second"]),
                f"{producer['ratio_platform_to_java']:.3f}",
            ],
            [
                "tutorial (`future.get()` per send)",
                _n(producer["tutorial"]["events"]),
                _n(producer["tutorial"]["events_per_second"]),
                f"{producer['ratio_tutorial_to_java']:.4f}",
            ],
            [
                "Kafka ConsumerPerformance (Java), reading",
                _n(ceiling["consumer"]["records"]),
                _n(ceiling["consumer"]["records_per_second"]),
                "-",
            ],
        ],
    )
    out += [
        f"Encoding alone (JSON, no Kafka) runs at {_n(producer['encoding_events_per_second'])} "
        f"events/s; generating the events at {_n(producer['generation_events_per_second'])} "
        "events/s (not timed in the producer figure).",
        "",
    ]
    if profile := producer.get("profile"):
        shares = ", ".join(f"{k} {v:.0%}" for k, v in profile["share_under"].items())
        out += [
            f"Where the platform producer's time goes (py-spy, {profile['samples']:,} "
            f"samples): {shares}. Busiest functions:",
            "",
        ]
        out += _table(
            ["function (file:line)", "share of samples"],
            [[f"`{p['frame']}`", f"{p['share']:.1%}"] for p in profile["top_own"]],
        )
    out += _producer_levers(results)
    consumer = ceiling["consumer"]["records_per_second"]
    header = ["settings", "events", "seconds", "batches", "batch p50 ms", "events/s"]
    header.append("ratio to consumer ceiling")

    def run_row(r: dict) -> list[str]:
        return [
            r["label"],
            _n(r["events"]),
            _n(r["seconds"], 1),
            str(r["batches"]),
            _n(r["batch_ms"]["p50"]),
            _n(r["events_per_second"]),
            f"{r['ratio_to_consumer_ceiling']:.4f}",
        ]

    out += ["## 3. Pipeline throughput (all analytics, from the earliest offset)", ""]
    out += _table(header, [run_row(results["pipeline"])])
    out += [
        f"The consumer ceiling is {_n(consumer)} records/s (Kafka's ConsumerPerformance on "
        "the same preloaded topic).",
        "",
    ]
    if levers := results.get("levers"):
        out += [
            "The levers, side by side on a preload of their own (each row the same events, "
            "one run after the other):",
            "",
        ]
        out += _table(header, [run_row(r) for r in levers])
        base = levers[0]["events_per_second"]
        out += [
            "Ratios to the first row: "
            + ", ".join(f"{r['label']}: {r['events_per_second'] / base:.2f}" for r in levers)
            + ".",
            "",
        ]
    out += [
        "Where the streaming queries' trigger time goes in the sustained run (Spark's "
        "progress durations; addBatch is the micro-batch's own Spark jobs: read, parse, "
        "de-duplicate, aggregate, write Delta and Kafka). The queries run concurrently on "
        "the same cores, so their trigger seconds add up to more than the run's:",
        "",
    ]
    parts = ["addBatch", "latestOffset", "queryPlanning", "walCommit", "commitOffsets"]
    out += _table(
        ["query", *parts, "trigger seconds"],
        [
            [name, *(f"{shares[p]:.0%}" for p in parts), _n(shares["trigger_seconds_total"], 1)]
            for name, shares in results["pipeline"]["where_time_goes"].items()
        ],
    )
    out += _alone(results)
    out += [
        "## 4. Latency at steady input rates",
        "",
        "Seconds from the moment a row became final (a window's end plus the watermark "
        "delay, a session's end plus gap plus delay, a purchase for click_to_purchase: "
        "benchmarks/latency.py) to the row being visible: the Kafka record's time in the "
        "output topic, the Delta commit time in the sink table.",
        "",
    ]
    for run in results["latency"]:
        if "skipped" in run:
            out += [f"**{_n(run['rate'])} events/s**: not run, {run['skipped']}.", ""]
            continue
        out += [
            f"**{_n(run['rate'])} events/s**"
            + (f", **{run['label']}**," if run.get("label", AFTER.label) != AFTER.label else "")
            + f" asked, {_n(run['achieved_rate'])} delivered, for "
            f"{run['seconds']:.0f} s; trigger {run['trigger_seconds']} s, watermark "
            f"{run['watermark_seconds']} s; batch duration p50 {_n(run['batch_ms']['p50'])} ms, "
            f"max {_n(run['batch_ms']['max'])} ms."
            + (
                f" **Fell behind** ({run['fell_behind']}): rows still pending are not "
                "counted, so the true latency is higher."
                if run.get("fell_behind")
                else ""
            ),
            "",
        ]
        rows = []
        for analytic in LATENCY_ANALYTICS:
            figures = run["analytics"][analytic]
            for where in ("topic", "table"):
                p = figures[where]
                rows.append(
                    [
                        analytic,
                        where,
                        str(p["rows"]),
                        _n(p["p50"], 2),
                        _n(p["p95"], 2),
                        _n(p["p99"], 2),
                    ]
                )
        out += _table(["analytic", "visible in", "rows", "p50 s", "p95 s", "p99 s"], rows)
        out += _breakdown(run)
    out += ["## 5. Scale: state as distinct users grow", ""]
    out += _table(
        [
            "user pool",
            "distinct users",
            "events",
            "state rows (peak)",
            "state memory (peak)",
            "batch p50 ms",
            "batch max ms",
            "events/s",
        ],
        [
            [
                _n(s["users"]),
                _n(s["distinct_users"]),
                _n(s["events"]),
                _n(s["state_rows"]),
                f"{s['state_memory_bytes'] / 2**20:,.1f} MiB",
                _n(s["batch_ms"]["p50"]),
                _n(s["batch_ms"]["max"]),
                _n(s["events_per_second"]),
            ]
            for s in results["scale"]
        ],
    )
    queries = sorted({q for s in results["scale"] for q in s["state_rows_by_query"]})
    out += [
        "Peak state rows by query (the de-duplication state holds every event id of a "
        "micro-batch until the watermark passes it, so it follows the batch size; sessions "
        "and per-user windows follow the users):",
        "",
    ]
    out += _table(
        ["user pool", *queries],
        [
            [_n(s["users"]), *(_n(s["state_rows_by_query"].get(q, 0)) for q in queries)]
            for s in results["scale"]
        ],
    )
    out += _at_rest(results)
    return "\n".join(out).rstrip() + "\n"


def _alone(results: dict) -> list[str]:
    """Stage 3c: each query alone on the pipeline's preload, beside all of them together:
    a stage of the full run, or else its own published run."""
    runs, together, where = results.get("alone"), results["pipeline"], "in this run"
    if not runs and (separate := _separate_run(results, "alone")):
        measured, where = separate
        runs, together = measured["alone"], measured["pipeline"]
    if not runs:
        return []

    def row(label: str, r: dict) -> list[str]:
        return [
            label,
            _n(r["events"]),
            _n(r["seconds"], 1),
            str(r["batches"]),
            _n(r["events_per_second"]),
            _n(1e6 / r["events_per_second"]),
        ]

    slowest = min(runs, key=lambda r: r["events_per_second"])
    reading = next((r for r in runs if r["label"].startswith("dead_letters")), None)
    added = sum(1e6 / r["events_per_second"] for r in runs)
    out = [
        "### Target 3's floor: each query alone",
        "",
        f"Each query of the application by itself on the same {_n(together['events'])} "
        f"events, {where}, with 2 shuffle partitions so that one query's stateful stage can "
        "use both cores. Microseconds per event are of the whole machine (one over events/s).",
        "",
    ]
    out += _table(
        ["queries", "events", "seconds", "batches", "events/s", "microseconds per event"],
        [
            row("all analytics together (the pipeline run)", together),
            *(row(r["label"], r) for r in runs),
        ],
    )
    out += [
        "Whatever the design, all analytics from a backlog must read, parse and validate "
        "every event"
        + (
            f" (what the dead-letter query alone does: {_n(1e6 / reading['events_per_second'])}"
            " microseconds)"
            if reading
            else ""
        )
        + " and do the costliest analytic's work, so together they cannot pass the slowest "
        f"row: {slowest['label']}, {_n(slowest['events_per_second'])} events/s, against the "
        f"target of {_n(BACKLOG_TARGET)} ({1e6 / BACKLOG_TARGET:.0f} microseconds). "
        f"The rows alone add up to {added:.0f} microseconds per event; together the queries "
        f"take {1e6 / together['events_per_second']:.0f}.",
        "",
    ]
    if reading:
        # Each analytic's own work: its row alone less the reading every row repeats.
        once = added - (len(runs) - 1) * 1e6 / reading["events_per_second"]
        out += [
            "Reading and parsing once for all (one query, or an intermediate topic) would save "
            f"the repeats: {once:.0f} microseconds per event at best, {_n(1e6 / once)} "
            "events/s; the rest is the analytics' own work (de-duplication, state, sinks).",
            "",
        ]
    return out


def _breakdown(run: dict) -> list[str]:
    """The application's CPU in a run and where each query's micro-batch went."""
    if "cores" not in run:
        return []
    rows = [breakdown.QueryBreakdown(**b) for b in run.get("breakdown", [])]
    out = [
        f"The application used **{run['cores']:.2f} cores** (CPU seconds of its process tree "
        "per wall second while the producer ran).",
        "",
    ]
    if rows:
        out += [
            "Where a micro-batch with input went, mean per query (ms; the jobs are Spark's, "
            "named by the sink's step; \"outside jobs\" is the driver's own work in the sink: "
            "Python, Delta's commit, the Kafka flush):",
            "",
            *_table(*breakdown.table(rows)),
        ]
    return out


def _separate_run(results: dict, stage: str) -> tuple[dict, str] | None:
    """A stage's own published run (`python -m benchmarks.<stage>`), for a full run that
    did not measure the stage itself, and the words that say where it comes from."""
    measured = published_stage(stage)
    if results["mode"] != "full" or measured is None:
        return None
    return measured, (
        f"in a separate run (`python -m benchmarks.{stage}`, {measured['started'][:16]})"
    )


def _at_rest(results: dict) -> list[str]:
    """Stage 6: a stage of the full run, or else a separate run's file."""
    runs = results.get("at_rest")
    where = "in this run"
    if not runs and (separate := _separate_run(results, "at_rest")):
        measured, where = separate
        runs = measured["runs"]
    if not runs:
        return []
    base = runs[0]["cores"]
    out = [
        f"## 6. At rest: {_n(runs[0]['rate'])} events/s, the `make up` default",
        "",
        f"Each row on the same producer rate, one after the other {where}; CPU is the "
        "streaming application's whole process tree, ended children included, over the "
        "whole run and minute by minute (the JVM keeps compiling Spark's own code for "
        "minutes after the start).",
        "",
    ]
    out += _table(
        [
            "lever",
            "trigger s",
            "seconds",
            "cores",
            "ratio to before",
            "cores per minute",
            "batch p50 ms",
            "worst topic p95 s",
        ],
        [
            [
                r["label"],
                str(r["trigger_seconds"]),
                f"{r['seconds']:.0f}",
                f"{r['cores']:.2f}",
                f"{r['cores'] / base:.2f}" if base else "-",
                " ".join(f"{c:.2f}" for c in r.get("cores_per_minute", [])) or "-",
                _n(r["batch_ms"]["p50"]),
                _n(worst_p95(r, "topic"), 1),
            ]
            for r in runs
        ],
    )
    if defaults := defaults_at_rest(runs):
        cores = defaults["cores"]
        out += [
            f"Target: the platform's defaults at most {REST_CORES_TARGET} cores here; "
            f"{'met' if cores <= REST_CORES_TARGET else '**not met**'} ({cores:.2f}).",
            "",
        ]
    out += _by_category(
        runs,
        lambda r: r.get("cores_by_thread"),
        "cores in",
        ".3f",
        "Where the cores went, by kind of thread (Linux's CPU time of each thread of the "
        "driver's JVM, the Python driver, and the rest of the process tree: "
        "benchmarks/threads.py):",
    )
    for r in runs:
        out += [f"**{r['label']}**", "", *_breakdown(r)]
    out += _by_category(
        runs,
        lambda r: (r.get("jfr") or {}).get("categories"),
        "CPU samples in",
        ".1%",
        "Where the driver's JVM spent its CPU (Java Flight Recorder samples after the "
        "first minute, `python -m benchmarks.at_rest --jfr`; benchmarks/jfr_summary.py "
        "puts each stack in its first matching category):",
    )
    return out


def _by_category(
    runs: list[dict], values: Callable[[dict], dict | None], header: str, fmt: str, intro: str
) -> list[str]:
    """A table with a row per category and a column per run that has values(run)."""
    having = [r for r in runs if values(r)]
    if not having:
        return []
    names = list(dict.fromkeys(name for r in having for name in values(r)))
    return [
        intro,
        "",
        *_table(
            [header, *(r["label"] for r in having)],
            [[name, *(format(values(r).get(name, 0), fmt) for r in having)] for name in names],
        ),
    ]


def _producer_levers(results: dict) -> list[str]:
    """The producer's levers: a stage of the full run, or else a separate run's file."""
    found = results.get("producer_levers")
    intro = "The producer's levers, side by side in this run"
    if found is None and (separate := _separate_run(results, "producer_levers")):
        measured, where = separate
        found = measured["variants"]
        intro = f"The producer's levers, side by side {where}"
    if not found:
        return []
    out = [
        intro + ": the same events through the platform's producer, each variant in a fresh "
        "process, the variants interleaved; median of the rounds.",
        "",
    ]
    return out + _table(
        ["producer settings", "events", "events/s (median)", "runs", "ratio to before"],
        [
            [
                r["label"],
                _n(r["events"]),
                _n(r["events_per_second"]),
                ", ".join(_n(x) for x in r["runs"]),
                f"{r['ratio_to_before']:.2f}",
            ]
            for r in found
        ],
    )


def _markdown_dir(results: dict, plot: Path) -> Path:
    """BENCHMARKS.md sits at the project root when published, beside the plot otherwise."""
    return PUBLISHED.parent.parent if plot.parent == PUBLISHED else plot.parent


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ceiling = results["kafka_ceiling"]
    producer = results["producer"]

    ax = axes[0][0]
    bars = {
        "Java producer": ceiling["producer"]["records_per_second"],
        "platform producer": producer["platform"]["events_per_second"],
        "tutorial producer": producer["tutorial"]["events_per_second"],
        "Java consumer": ceiling["consumer"]["records_per_second"],
        "pipeline (sustained)": results["pipeline"]["events_per_second"],
        **{f"lever: {r['label'][:40]}": r["events_per_second"] for r in results.get("levers", [])},
    }
    ax.barh(list(bars), list(bars.values()), color="#4c72b0")
    ax.set_xscale("log")
    ax.set_xlabel("events per second (log scale)")
    ax.set_title("Throughput beside Kafka's own tools")
    ax.invert_yaxis()

    ax = axes[0][1]
    for analytic in LATENCY_ANALYTICS:
        xs, ys = [], []
        for run in defaults_latency(results):
            if "skipped" in run:
                continue
            p95 = run["analytics"][analytic]["topic"]["p95"]
            if p95 is not None:
                xs.append(run["rate"])
                ys.append(p95)
        if xs:
            ax.plot(xs, ys, marker="o", label=analytic)
    ax.axhline(5, color="grey", linestyle="--", linewidth=1, label="target p95 5 s")
    ax.set_xlabel("input events per second")
    ax.set_ylabel("p95 seconds, final to visible in topic")
    ax.set_title("Latency")
    ax.legend(fontsize=8)

    scale = results["scale"]
    users = [s["distinct_users"] for s in scale]
    ax = axes[1][0]
    ax.plot(users, [s["state_rows"] for s in scale], marker="o", label="state rows")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("distinct users")
    ax.set_ylabel("peak state rows")
    ax.set_title("State as users grow")
    twin = ax.twinx()
    twin.plot(users, [s["state_memory_bytes"] / 2**20 for s in scale], marker="s", color="#dd8452")
    twin.set_ylabel("peak state memory, MiB", color="#dd8452")

    ax = axes[1][1]
    ax.plot(users, [s["batch_ms"]["p50"] for s in scale], marker="o", label="p50")
    ax.plot(users, [s["batch_ms"]["max"] for s in scale], marker="o", label="max")
    ax.set_xscale("log")
    ax.set_xlabel("distinct users")
    ax.set_ylabel("batch duration, ms")
    ax.set_title("Batch duration as users grow")
    ax.legend()

    fig.suptitle(
        f"{results['mode']} run, {results['machine']['cpus']} CPUs, {results['started'][:10]}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def summary(results: dict) -> str:
    """The console's last words: each target, measured, met or not."""
    lines = [f"benchmarks ({results['mode']}) done in {results['seconds']} s"]
    for t in results["targets"]:
        lines.append(
            f"  {t['name']}: {t['measured']} (target {t['target']}) "
            f"{'met' if t['met'] else 'NOT met'}"
        )
    return "\n".join(lines)


def write(results: dict, directory: Path) -> Path:
    """The plot into `directory` and the markdown beside it, or at the project root when
    `directory` is the published one; returns the markdown's path."""
    image = directory / "benchmarks.png"
    plot(results, image)
    target = (
        PROJECT_ROOT / "BENCHMARKS.md" if directory == PUBLISHED else directory / "BENCHMARKS.md"
    )
    target.write_text(markdown(results, plot=image))
    return target


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.report [results.json]`: rewrite the markdown and the plot from a
    run's results (default: the published full run), without measuring again."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]).resolve() if args else PUBLISHED / "results.json"
    results = json.loads(source.read_text())
    target = write(results, source.parent)
    print(f"wrote {target} and {source.parent / 'benchmarks.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
