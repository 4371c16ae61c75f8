"""The metrics endpoint scraped by a real Prometheus (Debian's package, unpacked into the tool
cache by include.runtime.tools), answering PromQL with the figures of known state files.

The plugin's app runs under uvicorn in this process on a state dir written here: progress
records (several batches per query: only the last may count), the supervisor's verdicts,
a quality history, a dead-letter table and the running totals behind the counters.
Prometheus scrapes it every second with the token file, as the README's prometheus.yml
does; a second job with a wrong token must be refused.  The expected values are computed
here from what was written.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import requests
import uvicorn
from deltalake import write_deltalake

from include import analytics
from include.runtime.procs import free_port
from include.runtime.tools import prometheus_binary
from include.settings import Settings
from include.ui.app import create_app
from tests.unit.test_metrics import COUNTERS

pytestmark = pytest.mark.ui

STATES = {
    "revenue_by_category": "running",
    "high_value_users": "running",
    "conversion_funnel": "lagging",
    "user_sessions": "running",
    "click_to_purchase": "stalled",
    "dead_letters": "dead",
}
DEAD_LETTER_ROWS = 7
# The running totals, as the driver, the producer and the supervisor leave them.
STREAM_TOTALS = {
    "last_batch_id": {"q": 4},
    "input_rows": 5_000,
    "batches": 5,
    "late_rows_dropped": {"revenue_by_category": 3, "dead_letters": 0},
    "output_rows": {q: 10 * (n + 1) for n, q in enumerate(analytics.QUERIES)},
}
PRODUCER_TOTALS = {"sent": 5_002, "failed": 2}
RESTART_TOTALS = {"restarts": {"supervisor": 1, "restart_dag": 4}}


def write_state(settings: Settings, now: datetime) -> dict[str, dict]:
    """The state files; returns the last progress record written per query."""
    last: dict[str, dict] = {}
    lines = []
    for batch in range(5):
        for i, query in enumerate(analytics.QUERIES):
            record = {
                "name": query,
                "batchId": batch,
                "timestamp": (now - timedelta(seconds=50 - 10 * batch)).isoformat(),
                "numInputRows": 100 * batch + i,
                "inputRowsPerSecond": 10.0 * batch + i + 0.25,
                "processedRowsPerSecond": 20.0 * batch + i,
                "batchDurationMs": 1000 + 100 * batch + i,
                "stateRowsTotal": 1000 * (i + 1) + batch,
                "rowsDroppedByWatermark": batch % 2,
            }
            lines.append(json.dumps(record))
            last[query] = record
    settings.paths.metrics_dir.mkdir(parents=True, exist_ok=True)
    (settings.paths.metrics_dir / "progress.jsonl").write_text("\n".join(lines) + "\n")
    verdicts = [
        {"query": q, "state": s, "reason": "written by the test", "total_lag": 1000 * n}
        for n, (q, s) in enumerate(STATES.items())
    ]
    for name, totals in (
        ("streaming_totals.json", STREAM_TOTALS),
        ("producer_totals.json", PRODUCER_TOTALS),
        ("restart_totals.json", RESTART_TOTALS),
    ):
        (settings.paths.metrics_dir / name).write_text(json.dumps(totals))
    (settings.paths.metrics_dir / "health.json").write_text(
        json.dumps({"at": now.timestamp(), "queries": verdicts})
    )
    runs = [
        {
            "at": now.isoformat(),
            "tables": [
                {
                    "table": "dead_letters",
                    "status": "fail",
                    "checks": [{"name": "too many dead letters", "status": "fail"}],
                }
            ],
        },
    ]
    settings.paths.quality_dir.mkdir(parents=True, exist_ok=True)
    (settings.paths.quality_dir / "history.jsonl").write_text(
        "".join(json.dumps(run) + "\n" for run in runs)
    )
    schema = analytics.DEAD_LETTERS.schema
    rows = {name: [None] * DEAD_LETTER_ROWS for name in schema.names}
    rows["source_offset"] = list(range(DEAD_LETTER_ROWS))
    write_deltalake(
        str(settings.paths.table_path(analytics.DEAD_LETTERS.name)),
        pa.table(rows, schema=pa.schema([f.with_nullable(True) for f in schema])),
    )
    return last


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Settings, str, dict[str, dict]]]:
    """The plugin's app on a free port over a state dir written by `write_state`."""
    state = tmp_path_factory.mktemp("metrics_state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(state))
        settings = Settings()
        last = write_state(settings, datetime.now(UTC))
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.1)
        try:
            yield settings, f"http://127.0.0.1:{port}", last
        finally:
            server.should_exit = True
            thread.join(10)


@pytest.fixture(scope="module")
def prometheus(served, tmp_path_factory) -> Iterator[str]:
    """Debian's Prometheus scraping /ecom/metrics every second, with the token file and
    (job `wrong_token`) with a wrong one."""
    settings, base, _ = served
    binary = prometheus_binary(settings)
    work = tmp_path_factory.mktemp("prometheus")
    wrong = work / "wrong_token"
    wrong.write_text("not-the-token\n")
    target = base.removeprefix("http://")
    jobs = [("ecom", settings.paths.metrics_token_file), ("wrong_token", wrong)]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",  # the app's own path; Airflow mounts it at /ecom
                "authorization": {"credentials_file": str(token)},
                "static_configs": [{"targets": [target]}],
            }
            for job, token in jobs
        ],
    }
    (work / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [
            str(binary),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def promql(prometheus: str, expr: str, timeout: float = 60) -> list[dict]:
    """The query's result vector, waiting until it has samples (the first scrapes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
            result = answer.json()["data"]["result"]
            if result:
                return result
        except (requests.ConnectionError, ValueError, KeyError):
            pass  # Prometheus still starting
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus has no result for {expr} after {timeout:.0f} s")
        time.sleep(0.5)


def scalar(prometheus: str, expr: str) -> float:
    (sample,) = promql(prometheus, expr)
    return float(sample["value"][1])


def test_prometheus_scrapes_the_figures_of_the_state_files(served, prometheus) -> None:
    _, _, last = served
    revenue = last["revenue_by_category"]
    assert (
        scalar(
            prometheus, 'ecom_query_input_rows_per_second{job="ecom",query="revenue_by_category"}'
        )
        == revenue["inputRowsPerSecond"]
    )
    assert (
        scalar(
            prometheus, 'ecom_query_batch_duration_seconds{job="ecom",query="revenue_by_category"}'
        )
        == revenue["batchDurationMs"] / 1000
    )
    assert scalar(prometheus, 'sum(ecom_query_state_rows{job="ecom"})') == sum(
        r["stateRowsTotal"] for r in last.values()
    )
    by_verdict = {
        s["metric"]["verdict"]: float(s["value"][1])
        for s in promql(prometheus, 'sum by (verdict) (ecom_supervisor_verdict{job="ecom"})')
    }
    expected = {
        v: float(list(STATES.values()).count(v)) for v in (*set(STATES.values()), "unknown")
    }
    assert {v: n for v, n in by_verdict.items() if n or v in expected} == expected
    assert scalar(prometheus, 'sum(ecom_query_lag_records{job="ecom"})') == 1000 * sum(
        range(len(STATES))
    )
    assert (
        scalar(prometheus, 'ecom_quality_status{job="ecom",table="dead_letters",status="fail"}')
        == 1
    )
    assert scalar(prometheus, 'ecom_dead_letter_rows{job="ecom"}') == DEAD_LETTER_ROWS


def test_prometheus_reads_the_running_totals_as_counters(served, prometheus) -> None:
    assert scalar(prometheus, 'ecom_input_rows_total{job="ecom"}') == STREAM_TOTALS["input_rows"]
    assert scalar(prometheus, 'ecom_batches_total{job="ecom"}') == STREAM_TOTALS["batches"]
    assert scalar(prometheus, 'sum(ecom_late_rows_dropped_total{job="ecom"})') == 3
    by_output = {
        s["metric"]["output"]: float(s["value"][1])
        for s in promql(prometheus, 'ecom_output_rows_total{job="ecom"}')
    }
    assert by_output == STREAM_TOTALS["output_rows"]
    assert (
        scalar(prometheus, 'ecom_dead_letters_total{job="ecom"}')
        == STREAM_TOTALS["output_rows"]["dead_letters"]
    )
    assert scalar(prometheus, 'sum(ecom_driver_restarts_total{job="ecom"})') == 1 + 4
    assert scalar(prometheus, 'ecom_driver_restarts_total{job="ecom",by="restart_dag"}') == 4
    assert scalar(prometheus, 'ecom_producer_events_sent_total{job="ecom"}') == 5_002
    assert scalar(prometheus, 'ecom_producer_events_failed_total{job="ecom"}') == 2
    # Prometheus took them as counters (the TYPE lines), the per-batch gauges are gone.
    metadata = requests.get(f"{prometheus}/api/v1/metadata", timeout=5).json()["data"]
    assert {
        name: entries[0]["type"] for name, entries in metadata.items() if name.endswith("_total")
    } == dict.fromkeys(COUNTERS, "counter")
    assert not {"ecom_query_batch_input_rows", "ecom_query_late_rows_dropped"} & set(metadata)


def test_a_scrape_without_the_right_token_is_refused(served, prometheus) -> None:
    settings, base, _ = served
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(f"{base}/metrics", headers=wrong, timeout=10).status_code == 401
    token = settings.paths.metrics_token_file.read_text().strip()
    good = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert good.status_code == 200 and good.headers["content-type"].startswith("text/plain")
    # Prometheus' own view: the job with the wrong token is down, refused with 401.
    deadline = time.monotonic() + 30
    while True:
        targets = requests.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"]
        health = {t["labels"]["job"]: t for t in targets["activeTargets"]}
        if health.get("wrong_token", {}).get("health") == "down":
            break
        assert time.monotonic() < deadline, f"targets: {health}"
        time.sleep(0.5)
    assert "401" in health["wrong_token"]["lastError"]
    assert scalar(prometheus, 'up{job="ecom"}') == 1
    assert scalar(prometheus, 'up{job="wrong_token"}') == 0


def test_promtool_finds_nothing_to_lint_in_the_exposition(served) -> None:
    settings, base, _ = served
    token = settings.paths.metrics_token_file.read_text().strip()
    body = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    promtool = prometheus_binary(settings).with_name("promtool")
    lint = subprocess.run(
        [str(promtool), "check", "metrics"], input=body.text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
