"""The metrics endpoint scraped by a real Prometheus (Debian's package, unpacked into the tool
cache by include.runtime.tools), answering PromQL with the figures of known state files.

The plugin's app runs under uvicorn in this process on a state dir written here: progress
records (several batches per query: only the last may count), the supervisor's verdicts,
a quality history and a dead-letter table.  Prometheus scrapes it every second with the
token file, as the README's prometheus.yml does; a second job with a wrong token must be
refused.  The expected values are computed here from what was written.
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
