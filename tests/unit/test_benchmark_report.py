"""BENCHMARKS.md from a run's results: the template and the values of its sections."""

from __future__ import annotations

import json

from benchmarks import report, report_values
from benchmarks.published import PUBLISHED
from benchmarks.targets import BACKLOG_TARGET
from include.settings.base import PROJECT_ROOT


def test_the_committed_document_is_the_published_results_rendered() -> None:
    results = json.loads((PUBLISHED / "results.json").read_text())
    rendered = report.markdown(results, plot=PUBLISHED / "benchmarks.png")
    committed = (PROJECT_ROOT / "BENCHMARKS.md").read_text()
    # Every section once: a section the template lost would fail here before the diff.
    for heading in (
        "## Targets",
        "## 1 and 2. Producers",
        "## 3. Pipeline",
        "### Target 3's floor",
        "## 4. Latency",
        "## 5. Scale",
        "## 6. At rest",
    ):
        assert rendered.count(heading) == 1, heading
    assert rendered == committed


def test_the_backlog_floor_is_the_slowest_query_alone() -> None:
    def ran(label: str, rate: int) -> dict:
        return {
            "label": label,
            "events": 1_000,
            "seconds": 1.0,
            "batches": 1,
            "events_per_second": rate,
        }

    results = {
        "mode": "short",
        "pipeline": ran("together", 4_000),
        "alone": [ran("dead_letters alone", 25_000), ran("click_to_purchase alone", 8_000)],
    }
    text = report.render_section("alone_section", report_values.alone(results))
    # One second of the machine over the rate: 1e6 / 25,000 = 40 us, 1e6 / 8,000 = 125 us.
    assert "| dead_letters alone | 1,000 | 1.0 | 1 | 25,000 | 40 |" in text
    assert "slowest row: click_to_purchase alone, 8,000 events/s" in text
    assert "add up to 165 microseconds per event; together the queries take 250" in text
    assert f"({1e6 / BACKLOG_TARGET:.0f} microseconds)" in text
    # Read once: 125 - 40 of its own plus 40 of reading.
    assert "125 microseconds per event at best, 8,000 events/s" in text
    assert report_values.alone({**results, "alone": []}) is None
    assert report.render_section("alone_section", None) == ""
