"""The values of BENCHMARKS.md's sections, one function a section, computed from a run's
results (and from the stages' own published runs, docs/benchmarks/<stage>.json, for the
stages a full run left out). benchmarks/report.py renders them through the templates.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks import breakdown
from benchmarks.client_variants import faster_client
from benchmarks.latency import worst_p95
from benchmarks.plans import AFTER
from benchmarks.producers import PLATFORM_CLIENT
from benchmarks.published import published_stage
from benchmarks.targets import BACKLOG_TARGET, REST_CORES_TARGET, defaults_at_rest
from benchmarks.tutorial_queries import PREFIX as TUTORIAL_PREFIX
from include.analytics import ANALYTIC_NAMES, DEAD_LETTERS


def number(value: float | None, digits: int = 0) -> str:
    """A figure with thousands separators, "-" for none."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def target_rows(results: dict) -> list[list[str]]:
    """A row per target: name, goal, measured, met."""
    return [
        [
            t["name"],
            t["target"],
            number(
                t["measured"],
                3 if isinstance(t["measured"], float) and t["measured"] < 100 else 0,
            ),
            "yes" if t["met"] else "**no**",
        ]
        for t in results["targets"]
    ]


def profile(producer: dict) -> list[list[str]] | None:
    """The busiest functions of the platform producer's py-spy profile, if it ran."""
    found = producer.get("profile")
    if not found:
        return None
    return [[f"`{p['frame']}`", f"{p['share']:.1%}"] for p in found["top_own"]]


def separate_run(results: dict, stage: str) -> tuple[dict, dict] | None:
    """A stage's own published run (`python -m benchmarks.<stage>`), for a full run that
    did not measure the stage itself, and where it comes from (the template's `where`)."""
    measured = published_stage(stage)
    if results["mode"] != "full" or measured is None:
        return None
    return measured, {"stage": stage, "started": measured["started"][:16]}


def median_rows(found: list[dict], ratio: str, digits: str) -> list[list[str]]:
    """Rows of a side-by-side comparison: label, events, median events/s, every run, ratio."""
    return [
        [
            r["label"],
            number(r["events"]),
            number(r["events_per_second"]),
            ", ".join(number(x) for x in r["runs"]),
            format(r[ratio], digits),
        ]
        for r in found
    ]


def producer_clients(results: dict) -> dict | None:
    """The Kafka clients side by side: part of the run's producer stage, or else a separate
    run's file (`python -m benchmarks.producer_clients --publish`)."""
    found, source = results["producer"].get("clients"), None
    if found is None and (separate := separate_run(results, "producer_clients")):
        found, source = separate
    if not found:
        return None
    rows = median_rows(found["rows"], "ratio_to_java", ".3f")
    return {
        "source": source,
        "rows": rows,
        "events": found["events"],
        "rounds": found["rounds"],
        "java_record_size": found["java_record_size"],
        "formats": found["formats"],
        "faster": faster_client(found),
        # A separate run's comparison is newer than the run: it shows today's client.
        "platform_client": results["producer"].get("platform_client", PLATFORM_CLIENT),
    }


def producer_levers(results: dict) -> dict | None:
    """kafka-python's levers: a stage of the full run, or else a separate run's file."""
    found, source = results.get("producer_levers"), None
    if found is None and (separate := separate_run(results, "producer_levers")):
        measured, source = separate
        found = measured["variants"]
    if not found:
        return None
    rows = median_rows(found, "ratio_to_before", ".2f")
    # Since the platform's producer is confluent-kafka the levers are kafka-python's only.
    return {
        "source": source,
        "rows": rows,
        "platform": "platform_client" not in results["producer"],
    }


def _run_row(r: dict) -> list[str]:
    return [
        r["label"],
        number(r["events"]),
        number(r["seconds"], 1),
        str(r["batches"]),
        number(r["batch_ms"]["p50"]),
        number(r["events_per_second"]),
        f"{r['ratio_to_consumer_ceiling']:.4f}",
    ]


def pipeline(results: dict) -> dict:
    """Stage 3: the pipeline run, the levers beside it and where its trigger time goes."""
    levers = results.get("levers") or []
    base = levers[0]["events_per_second"] if levers else None
    parts = ["addBatch", "latestOffset", "queryPlanning", "walCommit", "commitOffsets"]
    return {
        "row": _run_row(results["pipeline"]),
        "levers": [_run_row(r) for r in levers],
        "ratios": [(r["label"], r["events_per_second"] / base) for r in levers],
        "parts": parts,
        "time_rows": [
            [name, *(f"{shares[p]:.0%}" for p in parts), number(shares["trigger_seconds_total"], 1)]
            for name, shares in results["pipeline"]["where_time_goes"].items()
        ],
    }


def alone(results: dict) -> dict | None:
    """Stage 3c: each query alone on the pipeline's preload, beside all of them together:
    a stage of the full run, or else its own published run."""
    runs, together, source = results.get("alone"), results["pipeline"], None
    if not runs and (separate := separate_run(results, "alone")):
        measured, source = separate
        runs, together = measured["alone"], measured["pipeline"]
    if not runs:
        return None

    def row(r: dict) -> list[str]:
        return [
            number(r["events"]),
            number(r["seconds"], 1),
            str(r["batches"]),
            number(r["events_per_second"]),
            number(1e6 / r["events_per_second"]),
        ]

    reading = next((r for r in runs if r["label"].startswith(DEAD_LETTERS.name)), None)
    added = sum(1e6 / r["events_per_second"] for r in runs)
    reading_us = 1e6 / reading["events_per_second"] if reading else None
    return {
        "source": source,
        "events": together["events"],
        "together": row(together),
        "rows": [[r["label"], *row(r)] for r in runs],
        "slowest": min(runs, key=lambda r: r["events_per_second"]),
        "reading_us": reading_us,
        "target": BACKLOG_TARGET,
        "added_us": added,
        "together_us": 1e6 / together["events_per_second"],
        # Each analytic's own work: its row alone less the reading every row repeats.
        "once_us": added - (len(runs) - 1) * reading_us if reading else None,
    }


def cpu(run: dict) -> dict | None:
    """The application's CPU in a run and where each query's micro-batch went."""
    if "cores" not in run:
        return None
    rows = [breakdown.QueryBreakdown(**b) for b in run.get("breakdown", [])]
    return {"cores": run["cores"], "table": breakdown.table(rows) if rows else None}


# Where a latency run's rows were visible: while the input flowed, and (runs that watch the
# idle rule) after it stopped, from the moment the rule closed them.
VISIBLE_IN = {
    "topic": "topic",
    "table": "table",
    "idle_topic": "topic, input stopped",
    "idle_table": "table, input stopped",
}


def latency_run(run: dict) -> dict:
    """One run of stage 4: what was asked and delivered, its percentiles and its CPU."""
    if "skipped" in run:
        return run
    rows = []
    for analytic in (a for a in ANALYTIC_NAMES if a in run.get("analytics", {})):
        for where, title in VISIBLE_IN.items():
            if (p := run["analytics"][analytic].get(where)) is None:
                continue
            rows.append(
                [
                    analytic,
                    title,
                    str(p["rows"]),
                    number(p["p50"], 2),
                    number(p["p95"], 2),
                    number(p["p99"], 2),
                    number(p.get("max"), 2),
                ]
            )
    label = run.get("label", AFTER.label)
    return {
        **run,
        "lever": label if label != AFTER.label else None,
        "fell_behind": run.get("fell_behind"),
        "rows": rows,
        "memory": memory(run),
        "cpu": cpu(run),
    }


def memory(run: dict) -> str | None:
    """The driver's memory in a run, as a sentence's end (None: not sampled)."""
    found = run.get("memory") or {}
    rss, heap = found.get("rss_mb"), found.get("heap_mb")
    if not rss:
        return None
    text = f"process tree RSS {rss['mean']:,.0f} MiB (peak {rss['max']:,.0f})"
    if heap:
        text += f", JVM used heap {heap['mean']:,.0f} MiB (peak {heap['max']:,.0f})"
    return text


def _mean_of(run: dict, measure: str) -> str:
    found = ((run.get("memory") or {}).get(measure) or {}).get("mean")
    return number(found)


def peer(results: dict) -> dict | None:
    """The peer row: every run with per-window figures (the platform's, the six queries',
    the tutorial's), each windowed analytic's time from a window's end to the first record
    with its final value, and the run's CPU and memory."""
    rest = results.get("at_rest") or []
    runs = [(r, "at rest") for r in rest] + [
        (r, f"{r['rate']:,} events/s") for r in results.get("latency", []) if "skipped" not in r
    ]
    runs = [(r, where) for r, where in runs if r.get("windows")]
    if not runs:
        return None
    names = [a for a in ANALYTIC_NAMES if any(a in _windows(r) for r, _ in runs)]
    rows = []
    for run, where in runs:
        windows = _windows(run)
        rows.append(
            [
                run.get("label", AFTER.label),
                where,
                str(run["trigger_seconds"]),
                f"{run['cores']:.2f}",
                _mean_of(run, "rss_mb"),
                _mean_of(run, "heap_mb"),
                *(_window_cell(windows.get(name)) for name in names),
            ]
        )
    return {"names": names, "rows": rows}


def _windows(run: dict) -> dict:
    """A run's per-window figures by analytic (the tutorial's queries carry a prefix)."""
    return {name.removeprefix(TUTORIAL_PREFIX): v for name, v in run["windows"].items()}


def _window_cell(found: dict | None) -> str:
    if not found or not found["windows"]:
        return "-"
    p = found["from_window_end"]
    return (
        f"{number(p['p50'], 1)} / {number(p['p95'], 1)} s "
        f"({found['windows']} windows, {found['records_per_window']:g} records each)"
    )


def scale(runs: list[dict]) -> dict:
    """Stage 5: state and batch duration per user pool, and state rows by query."""
    queries = sorted({q for s in runs for q in s["state_rows_by_query"]})
    return {
        "rows": [
            [
                number(s["users"]),
                number(s["distinct_users"]),
                number(s["events"]),
                number(s["state_rows"]),
                f"{s['state_memory_bytes'] / 2**20:,.1f} MiB",
                number(s["batch_ms"]["p50"]),
                number(s["batch_ms"]["max"]),
                number(s["events_per_second"]),
            ]
            for s in runs
        ],
        "queries": queries,
        "by_query": [
            [number(s["users"]), *(number(s["state_rows_by_query"].get(q, 0)) for q in queries)]
            for s in runs
        ],
    }


def at_rest(results: dict) -> dict | None:
    """Stage 6: a stage of the full run, or else a separate run's file."""
    runs, source = results.get("at_rest"), None
    if not runs and (separate := separate_run(results, "at_rest")):
        measured, source = separate
        runs = measured["runs"]
    if not runs:
        return None
    base = runs[0]["cores"]
    rows = [
        [
            r["label"],
            str(r["trigger_seconds"]),
            f"{r['seconds']:.0f}",
            f"{r['cores']:.2f}",
            f"{r['cores'] / base:.2f}" if base else "-",
            " ".join(f"{c:.2f}" for c in r.get("cores_per_minute", [])) or "-",
            _mean_of(r, "rss_mb"),
            _mean_of(r, "heap_mb"),
            number(r["batch_ms"]["p50"]),
            number(worst_p95(r, "topic"), 1),
            number(worst_p95(r, "idle_topic", "max"), 1),
        ]
        for r in runs
    ]
    return {
        "source": source,
        "rate": runs[0]["rate"],
        "rows": rows,
        "defaults": defaults_at_rest(runs),
        "target": REST_CORES_TARGET,
        "by_thread": by_category(runs, lambda r: r.get("cores_by_thread"), "cores in", ".3f"),
        "runs": [{"label": r["label"], "cpu": cpu(r)} for r in runs],
        "jfr": by_category(
            runs, lambda r: (r.get("jfr") or {}).get("categories"), "CPU samples in", ".1%"
        ),
    }


def by_category(
    runs: list[dict], values: Callable[[dict], dict | None], header: str, fmt: str
) -> tuple[list[str], list[list[str]]] | None:
    """A table with a row per category and a column per run that has values(run)."""
    having = [r for r in runs if values(r)]
    if not having:
        return None
    names = list(dict.fromkeys(name for r in having for name in values(r)))
    return (
        [header, *(r["label"] for r in having)],
        [[name, *(format(values(r).get(name, 0), fmt) for r in having)] for name in names],
    )
