"""The metrics check inside the end-to-end run (called by tests/e2e/test_platform.py while
the streaming run is up and a quality run has finished).

On the real Airflow API server: ``/ecom/metrics`` refuses anonymous callers and Airflow's own
login (its token is not the metrics token), answers the token file's bearer token with the
figures of the state files (compared with the files read here), the health page links the
Spark UI, and that UI serves Spark's own Prometheus metrics of the streaming queries.
"""

from __future__ import annotations

import json
import re

import requests

from include.analytics import PIPELINE, REVENUE_BY_CATEGORY
from include.runtime.airflow_api import AirflowApi
from include.runtime.spark_history import history_url
from include.settings import Settings

SAMPLE = re.compile(r"^(ecom_[a-z_]+)(?:\{([^}]*)\})? (\S+)$", re.MULTILINE)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(name, labels) -> value of the exposition's ``ecom_*`` samples."""
    return {
        (name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels))): float(value)
        for name, labels, value in SAMPLE.findall(text)
    }


def check_metrics(api: AirflowApi, settings: Settings, env: dict[str, str]) -> None:
    """Assert the metrics endpoint and the Spark UI's metrics on the running platform."""
    url = f"{api.base_url}/ecom/metrics"
    assert requests.get(url, timeout=30).status_code == 401
    # A login whose role reads the pipeline opens it (the roles: tests/ui/test_roles.py);
    # Prometheus, which cannot log in, sends a token of its own.
    assert api.page("/ecom/metrics").status_code == 200
    token = settings.paths.metrics_token_file.read_text().strip()
    assert settings.paths.metrics_token_file.stat().st_mode & 0o077 == 0

    query = REVENUE_BY_CATEGORY.name
    progress = settings.paths.metrics_dir / "progress.jsonl"
    batches = [
        json.loads(line)["batchId"]
        for line in progress.read_text().splitlines()
        if f'"name": "{query}"' in line
    ]
    answer = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(answer.text)
    last_batch = found[("ecom_query_last_batch_id", frozenset({("query", query)}))]
    # The stream runs on: the endpoint's batch is the file's last one or a newer one.
    assert batches and last_batch >= max(batches), (last_batch, max(batches or [None]))
    assert ("ecom_query_input_rows_per_second", frozenset({("query", query)})) in found
    statuses = {
        dict(labels)["status"]: value
        for (name, labels), value in found.items()
        if name == "ecom_quality_status" and dict(labels)["table"] == query
    }
    assert sum(statuses.values()) == 1, statuses  # the quality run before this checked it

    # The counters of every batch so far: rows in from the input topic, rows out of each.
    assert found[("ecom_input_rows_total", frozenset())] > 0, answer.text[:2000]
    assert found[("ecom_output_rows_total", frozenset({("output", query)}))] > 0

    spark_ui = f"http://{settings.bind_host}:{settings.spark.ui_port}"
    health = api.page("/ecom/health").text
    assert spark_ui in health
    # The History Server `make up` started, linked for the running driver.
    assert f"{history_url(settings)}/history/" in health, "no Spark history link"
    listed = requests.get(f"{history_url(settings)}/api/v1/applications", timeout=30).json()
    assert any(app["name"] == "ecommerce-streaming" for app in listed), listed
    spark = requests.get(f"{spark_ui}/metrics/prometheus", timeout=30)
    assert spark.status_code == 200, f"Spark UI metrics at {spark_ui}: {spark.status_code}"
    # Spark's own streaming metrics are the one query's.
    assert f"spark_streaming_{PIPELINE}_" in spark.text, spark.text[:1000]
