"""The benchmark command's short mode, end to end: every stage runs and what it reports
holds together (counts match what was sent, ratios match their parts, no row is visible
before the event that closed it was sent, state grows with distinct users)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from include.analytics import PIPELINE
from include.settings.base import PROJECT_ROOT

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--short", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "benchmarks (short) done" in done.stdout
    return out, json.loads((out / "results.json").read_text())


def test_every_event_sent_is_counted_by_each_stage(results) -> None:
    from benchmarks.plans import SHORT

    _, found = results
    ceiling, producer = found["kafka_ceiling"], found["producer"]
    assert ceiling["producer"]["records"] == SHORT.events
    assert ceiling["consumer"]["records"] == SHORT.events
    assert producer["platform"]["events"] == SHORT.events
    assert producer["platform"]["failed"] == 0
    assert producer["tutorial"]["events"] == SHORT.tutorial_events
    pipeline = found["pipeline"]
    assert pipeline["events"] == SHORT.events
    assert pipeline["batches"] >= 1


def test_ratios_are_the_quotients_of_their_parts(results) -> None:
    _, found = results
    java = found["kafka_ceiling"]["producer"]["records_per_second"]
    producer = found["producer"]
    assert producer["ratio_platform_to_java"] == pytest.approx(
        producer["platform"]["events_per_second"] / java, abs=1e-3
    )
    consumer = found["kafka_ceiling"]["consumer"]["records_per_second"]
    pipeline = found["pipeline"]
    assert pipeline["ratio_to_consumer_ceiling"] == pytest.approx(
        pipeline["events_per_second"] / consumer, abs=1e-4
    )
    # The tutorial waits a round trip per event: it cannot beat the batching producer.
    assert producer["tutorial"]["events_per_second"] < producer["platform"]["events_per_second"]


def _runs(found: dict) -> tuple[dict, dict]:
    """The latency stage's run of the platform's defaults, and the peer's beside it."""
    from benchmarks.plans import AFTER, TUTORIAL_PEER

    defaults, peer = found["latency"]
    assert (defaults["label"], peer["label"]) == (AFTER.label, TUTORIAL_PEER.label)
    return defaults, peer


def test_no_row_is_visible_before_the_event_that_closed_it(results) -> None:
    _, found = results
    run, _ = _runs(found)
    clicks = run["analytics"]["click_to_purchase"]
    assert clicks["topic"]["rows"] > 0 and clicks["table"]["rows"] > 0
    for analytic, figures in run["analytics"].items():
        for where, p in figures.items():
            if p["rows"]:
                assert 0 <= p["p50"] <= p["p95"] <= p["p99"] <= p["max"], (analytic, where, p)


def test_the_idle_rule_closed_the_last_windows_after_the_input_stopped(results) -> None:
    _, found = results
    run, _ = _runs(found)
    revenue = run["analytics"]["revenue_by_category"]
    assert revenue["idle_topic"]["rows"] > 0 and revenue["idle_table"]["rows"] > 0
    # Never before the rule made them final (a second of clock granularity).
    assert revenue["idle_topic"]["p50"] >= -1


def test_the_peer_row_measures_the_tutorials_windows_and_memory(results) -> None:
    from benchmarks.tutorial_queries import NAMES

    _, found = results
    defaults, peer = _runs(found)
    assert set(peer["windows"]) == set(NAMES)
    revenue = peer["windows"]["tutorial_revenue_by_category"]
    # 10 s windows in a 25 s run: update mode sends each window at least once.
    assert revenue["windows"] > 0 and revenue["records_per_window"] >= 1
    assert revenue["from_window_end"]["p50"] is not None
    mine = defaults["windows"]["revenue_by_category"]
    assert mine["records"] > 0 and mine["records_per_window"] in (None, 1.0)  # once each
    for run in (defaults, peer):
        assert run["memory"]["rss_mb"]["mean"] > 100  # a JVM and a Python process
        assert 0 < run["memory"]["heap_mb"]["mean"] <= run["memory"]["rss_mb"]["max"]


def test_the_latency_run_says_where_each_batch_went(results) -> None:
    _, found = results
    run, _ = _runs(found)
    assert 0 < run["cores"] <= 2 * (os.cpu_count() or 1)
    by_query = {b["query"]: b for b in run["breakdown"]}
    assert set(by_query) == {PIPELINE}  # one query, whatever the outputs
    pipeline = by_query[PIPELINE]
    assert pipeline["batches"] >= 1
    # One Spark job per batch, the collect the REST API names; the sinks run in the driver.
    assert pipeline["jobs_per_batch"] == 1
    assert pipeline["jobs_ms"].get("collect outputs", 0) > 0
    assert pipeline["driver_ms"].get("kafka_ms", 0) > 0
    assert pipeline["driver_ms"].get("delta_ms", 0) > 0
    # The phases are Spark's own parts of the trigger: they cannot add up to more.
    assert sum(pipeline["phases_ms"].values()) <= pipeline["trigger_ms"] * 1.05 + 5


def test_state_grows_with_distinct_users(results) -> None:
    _, found = results
    small, large = found["scale"]
    assert small["distinct_users"] < large["distinct_users"] <= large["users"]
    assert small["state_rows"] < large["state_rows"]


def test_the_report_has_its_table_and_plot(results) -> None:
    out, found = results
    markdown = (out / "BENCHMARKS.md").read_text()
    for heading in ("## Targets", "## 3. Pipeline", "## 4. Latency", "## 5. Scale"):
        assert heading in markdown
    assert (out / "benchmarks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {t["name"] for t in found["targets"]} >= {
        "producer events/s",
        "pipeline events/s from a backlog, all outputs",
    }
