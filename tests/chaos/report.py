"""The campaign's report: its counts as Markdown (docs/chaos.md) and as a one-line summary."""

from __future__ import annotations

import math
import statistics

from tests.chaos.campaign import Report
from tests.chaos.faults import KINDS


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} / {max(values):.0f}"


def markdown(report: Report, command: str) -> str:
    lines = [
        "# Fault campaign",
        "",
        f"`{command}`, {report.started} to {report.finished}, on a {report.cores}-core "
        "machine. Written by `make chaos` (tests/chaos/).",
        "",
        f"Events in the tutorial's format at {report.rate:g}/s throughout; the supervisor DAG "
        f"looked every {report.supervisor_interval_seconds} s and did every restart. "
        f"**Verdict: {'PASS' if report.ok else 'FAIL'}**.",
        "",
        "## Faults and recoveries",
        "",
        "Recovery: from the fault to every query having a live driver and a batch committed "
        "after the fault.",
        "",
        "| fault | injected | recovered | recovery p50 / max (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind, label in KINDS.items():
        mine = [f for f in report.faults if f.kind == kind]
        times = [f.recovery_seconds for f in mine if math.isfinite(f.recovery_seconds)]
        lines.append(f"| {label} | {len(mine)} | {len(times)} | {_seconds(times)} |")
    lines += [
        f"| **all** | **{len(report.faults)}** | **{len(report.recovered)}** | "
        f"**{_seconds(report.recovered)}** |",
        "",
        f"Streaming runs the supervisor started: {report.streaming_runs_started}.",
        "",
        "## Rows, against the independent oracle",
        "",
        f"{report.events_in_topic:,} events in the input topic "
        f"({report.events_undelivered} could not be delivered by the campaign's producer); "
        f"{report.late_rows_counted} rows were counted as later than the watermark.",
        "",
        "| table | expected | written | lost | duplicated | wrong | unexplained |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in report.tables:
        lines.append(
            f"| {t.table} | {t.expected:,} | {t.written:,} | {t.lost} | {t.duplicated} | "
            f"{t.wrong} | {t.unexplained} |"
        )
    lines.append(
        f"| **all** | **{report.total('expected'):,}** | **{report.total('written'):,}** | "
        f"**{report.total('lost')}** | **{report.total('duplicated')}** | "
        f"**{report.total('wrong')}** | **{report.total('unexplained')}** |"
    )
    dl = report.dead_letters
    if dl is not None:
        lines += [
            "",
            "## Malformed records",
            "",
            "| sent | dead-lettered exactly once | missing | duplicated | wrong reason | "
            "dead letters of valid events |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {dl.malformed_sent} | {dl.exactly_once} | {dl.missing} | {dl.duplicated} | "
            f"{dl.wrong_reason} | {dl.not_malformed} |",
        ]
    lines += [
        "",
        "## Every fault",
        "",
        "| # | at (UTC) | fault | recovery (s) |",
        "| ---: | --- | --- | ---: |",
    ]
    for f in report.faults:
        lines.append(f"| {f.number} | {f.at} | {f.what} | {f.recovery_seconds:.0f} |")
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    kinds = ", ".join(f"{k} {sum(f.kind == k for f in report.faults)}" for k in KINDS)
    return (
        f"faults {len(report.faults)} ({kinds}); recovered {len(report.recovered)}, "
        f"p50/max {_seconds(report.recovered)} s; rows lost {report.total('lost')}, "
        f"duplicated {report.total('duplicated')}, wrong {report.total('wrong')}, "
        f"unexplained {report.total('unexplained')}; malformed dead-lettered exactly once "
        f"{report.dead_letters.exactly_once if report.dead_letters else 0}/"
        f"{report.dead_letters.malformed_sent if report.dead_letters else 0}"
    )
