"""The performance targets on this machine, and which runs of a result are the platform's
defaults that the targets judge."""

from __future__ import annotations

from benchmarks import latency
from benchmarks.plans import AFTER, FULL, PER_BATCH_AFTER, SIX_QUERIES
from benchmarks.published import published_stage

# Issue 25's targets (the one query): at the `make up` rate, the streaming application's
# cores and its worst analytic's p95 (PER_BATCH_AFTER, stage 6); at 2,000 events/s the worst
# p95 to topic and table (stage 4); all outputs' events/s from a backlog (stage 3); after the
# input stops, the idle rule's rows visible within IDLE_SLACK_SECONDS of their close.
REST_CORES_TARGET = 0.25
REST_P95_TARGET = 5.0
STEADY_RATE, STEADY_P95_TARGET = 2_000, 10.0
BACKLOG_TARGET = 7_000
IDLE_SLACK_SECONDS = 10.0


def targets(results: dict) -> list[dict]:
    """The issue's targets on this machine, and whether this run met them."""
    found = []
    producer = results.get("producer")
    if producer:
        rate = producer["platform"]["events_per_second"]
        found.append(_target("producer events/s", ">= 50,000", rate, rate >= 50_000))
        ratio = producer["ratio_platform_to_java"]
        found.append(_target("producer / Java producer", ">= 0.3", ratio, ratio >= 0.3))
    if results.get("pipeline"):
        rate = results["pipeline"]["events_per_second"]
        found.append(
            _target(
                "pipeline events/s from a backlog, all outputs",
                f">= {BACKLOG_TARGET:,}",
                rate,
                rate >= BACKLOG_TARGET,
            )
        )
    run = next((r for r in defaults_latency(results) if r["rate"] == STEADY_RATE), None)
    for where in ("topic", "table") if run is not None else ():
        name = f"latency p95 at {STEADY_RATE:,} events/s (worst analytic, {where}, not behind)"
        if "skipped" in run:
            found.append(_target(name, f"<= {STEADY_P95_TARGET:g} s", None, False))
            continue
        worst = latency.worst_p95(run, where)
        met = worst is not None and worst <= STEADY_P95_TARGET and not run.get("fell_behind")
        found.append(_target(name, f"<= {STEADY_P95_TARGET:g} s", worst, met))
    rest = results.get("at_rest")
    if not rest and results.get("mode") == FULL.mode:  # stage 6 skipped: its own run's
        rest = (published_stage("at_rest") or {}).get("runs", [])
    if run := defaults_at_rest(rest or []):
        cores = run["cores"]
        found.append(
            _target(
                f"streaming app cores at {run['rate']} events/s (make up)",
                f"<= {REST_CORES_TARGET}",
                cores,
                cores <= REST_CORES_TARGET,
            )
        )
        worst = latency.worst_p95(run, "topic")
        found.append(
            _target(
                f"latency p95 at {run['rate']} events/s (make up, worst analytic, topic)",
                f"<= {REST_P95_TARGET:g} s",
                worst,
                worst is not None and worst <= REST_P95_TARGET,
            )
        )
        closed = max(
            (
                w
                for where in ("idle_topic", "idle_table")
                if (w := latency.worst_p95(run, where, "max")) is not None
            ),
            default=None,
        )
        found.append(
            _target(
                "input stopped: the idle rule's rows visible after their close (worst, max)",
                f"<= {IDLE_SLACK_SECONDS:g} s",
                closed,
                closed is not None and closed <= IDLE_SLACK_SECONDS,
            )
        )
    found += memory_targets(results, rest or [])
    return found


def memory_targets(results: dict, rest: list[dict]) -> list[dict]:
    """The driver's RSS and used heap, no more than the before row's beside it: at rest and
    at the steady rate."""
    found = []
    for where, runs in (("at rest", rest), (f"at {STEADY_RATE:,} events/s", steady(results))):
        mine = next((r for r in runs if r.get("label") in DEFAULT_LABELS), None)
        before = next((r for r in runs if r.get("label") == SIX_QUERIES.label), None)
        if not mine or not before:
            continue
        for measure, title in (("rss_mb", "RSS"), ("heap_mb", "used heap")):
            now = ((mine.get("memory") or {}).get(measure) or {}).get("mean")
            then = ((before.get("memory") or {}).get(measure) or {}).get("mean")
            if now is None or then is None:
                continue
            found.append(
                _target(
                    f"driver {title} {where}, MiB (mean; the six queries: {then:,.0f})",
                    "<= the six queries'",
                    now,
                    now <= then,
                )
            )
    return found


def steady(results: dict) -> list[dict]:
    """Stage 4's runs at the steady rate: the defaults and the rows beside them."""
    return [r for r in results.get("latency", []) if r.get("rate") == STEADY_RATE]


# The labels of the platform's defaults in stage 4 and stage 6.
DEFAULT_LABELS = (AFTER.label, PER_BATCH_AFTER.label)


def defaults_latency(results: dict) -> list[dict]:
    """Stage 4's runs of the platform's defaults (not the before rows beside them)."""
    return [r for r in results.get("latency", []) if r.get("label", AFTER.label) == AFTER.label]


def defaults_at_rest(runs: list[dict]) -> dict | None:
    """Stage 6's run of the platform's defaults at the `make up` trigger."""
    return next((r for r in runs if r["label"] == PER_BATCH_AFTER.label), None)


def _target(name: str, target: str, measured, met: bool) -> dict:
    return {"name": name, "target": target, "measured": measured, "met": met}
