"""The performance targets on this machine, and which runs of a result are the platform's
defaults that the targets judge."""

from __future__ import annotations

from benchmarks import latency
from benchmarks.plans import AFTER, FULL, PER_BATCH_AFTER
from benchmarks.published import published_stage

# Issue 14's targets: the streaming application's cores at rest (PER_BATCH_AFTER), and
# all analytics' events/s from a backlog.
REST_CORES_TARGET = 0.15
BACKLOG_TARGET = 12_000


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
        found.append(_target("pipeline events/s, all analytics", ">= 20,000", rate, rate >= 20_000))
        found.append(
            _target(
                "pipeline events/s from a backlog (real time)",
                f">= {BACKLOG_TARGET:,}",
                rate,
                rate >= BACKLOG_TARGET,
            )
        )
    # Real time: (rate, where, seconds) -- the worst analytic's p95, the app not behind.
    for rate, where, limit in ((2_000, "topic", 5), (2_000, "table", 15), (5_000, "topic", 10)):
        run = next((r for r in defaults_latency(results) if r["rate"] == rate), None)
        if run is None:
            continue
        name = f"latency p95 at {rate:,} events/s (worst analytic, {where}, not behind)"
        if "skipped" in run:
            found.append(_target(name, f"<= {limit} s", None, False))
            continue
        worst = latency.worst_p95(run, where)
        met = worst is not None and worst <= limit and not run.get("fell_behind")
        found.append(_target(name, f"<= {limit} s", worst, met))
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
    return found


def defaults_latency(results: dict) -> list[dict]:
    """Stage 4's runs of the platform's defaults (not the before rows beside them)."""
    return [r for r in results.get("latency", []) if r.get("label", AFTER.label) == AFTER.label]


def defaults_at_rest(runs: list[dict]) -> dict | None:
    """Stage 6's run of the platform's defaults at the `make up` trigger."""
    return next((r for r in runs if r["label"] == PER_BATCH_AFTER.label), None)


def _target(name: str, target: str, measured, met: bool) -> dict:
    return {"name": name, "target": target, "measured": measured, "met": met}
