"""Spark's own metrics on the dashboard are ones a real Spark 4 driver of this platform emits.

A driver started the way the streaming DAG starts one (spark-submit, the platform's session
conf from spark_jobs.session and the UI conf the operator adds, include.runtime.spark_launch
.ui_conf) runs a small stateful streaming query named like the platform's one
(``pipeline``), from Spark's rate source to the no-op sink.  Its UI's PrometheusServlet must
serve every Spark name the dashboard and the alert rules query, and Debian's Prometheus,
scraping it with the `spark-driver` job of deploy/prometheus/prometheus.yml (address and
interval changed for the test), must store them and answer every Spark panel's expression.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import requests
import yaml

from include.runtime.procs import free_port, stop_tree
from include.runtime.spark_launch import launch_app, ui_conf
from include.runtime.tools import prometheus_binary
from include.settings import Settings
from tests.conftest import poll
from tests.unit.test_grafana_provisioning import (
    GRAFANA_MACROS,
    PROMETHEUS,
    all_exprs,
    metric_names,
    spark_names,
)

pytestmark = pytest.mark.integration

# The platform's query name (include.analytics.PIPELINE) is part of Spark's metric names
# (metrics_ecom_driver_spark_streaming_<query>_...): the app below uses the same constant.
APP = """
import sys

from pyspark.sql import functions as F

from include.analytics import PIPELINE
from include.settings import Settings
from spark_jobs.session import build_session

spark = build_session(Settings())
counts = (
    spark.readStream.format("rate").option("rowsPerSecond", 20).load()
    .withWatermark("timestamp", "5 seconds")
    .groupBy(F.window("timestamp", "2 seconds"))
    .count()
)
query = (
    counts.writeStream.queryName(PIPELINE)
    .outputMode("append")
    .format("noop")
    .trigger(processingTime="1 second")
    .start()
)
query.awaitTermination(float(sys.argv[1]))
"""


def served_names(text: str) -> set[str]:
    """The metric names of a text exposition (sample lines; the servlet writes no TYPE)."""
    return {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """The driver's UI address, once its servlet serves the streaming query's metrics, and
    the text of both endpoints then."""
    work = tmp_path_factory.mktemp("spark_metrics")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(work / "state"))
        mp.setenv("ECOM_SPARK__UI_PORT", str(port))
        settings = Settings()
        app = work / "metrics_app.py"
        app.write_text(APP)
        log = work / "driver.log"
        conf = ui_conf(settings)
        assert conf["spark.ui.port"] == str(port)
        proc = launch_app(settings, app, log, "120", conf=conf)
        base = f"http://{settings.bind_host}:{port}"

        def fetch() -> dict[str, str]:
            assert proc.poll() is None, f"the driver ended: {log.read_text()[-3000:]}"
            try:
                return {
                    path: requests.get(base + path, timeout=5).text
                    for path in ("/metrics/prometheus", "/metrics/executors/prometheus")
                }
            except requests.ConnectionError:
                return {}

        try:
            texts = poll(
                fetch,
                lambda t: bool(t) and "_spark_streaming_pipeline_" in t["/metrics/prometheus"],
                "the driver's servlet to serve the streaming query's metrics",
                timeout=60,
                interval=1,
            )
            yield base, texts
        finally:
            stop_tree(proc.pid, timeout=20)


def test_every_spark_name_the_dashboard_uses_is_served(driver) -> None:
    _, texts = driver
    served = served_names(texts["/metrics/prometheus"]) | served_names(
        texts["/metrics/executors/prometheus"]
    )
    wanted = spark_names()
    assert len(wanted) >= 10
    assert wanted <= served, f"not served by a Spark 4 driver: {sorted(wanted - served)}"


def test_prometheus_reads_both_endpoints_with_the_shipped_job(driver, tmp_path) -> None:
    base, _ = driver
    host = base.removeprefix("http://")
    # Prometheus 3 (compose) refuses a scrape without a text/plain content type.
    for path in ("/metrics/prometheus", "/metrics/executors/prometheus"):
        kind = requests.get(base + path, timeout=5).headers["Content-Type"]
        assert kind.split(";")[0].strip() == "text/plain", (path, kind)

    shipped = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "spark-driver"]
    for group in job["static_configs"]:
        group["targets"] = [host]  # airflow-scheduler:4040 in compose
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": [job]}
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(prometheus_binary(Settings())),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def query(expr: str) -> dict:
            try:
                return requests.get(f"{api}/query", params={"query": expr}, timeout=5).json()
            except (requests.ConnectionError, ValueError):
                return {}

        names = sorted(spark_names())
        stored = f'count by (__name__) ({{job="spark-driver",__name__=~"{"|".join(names)}"}})'
        found = poll(
            lambda: query(stored),
            lambda a: len(a.get("data", {}).get("result", [])) == len(names),
            "Prometheus to store every Spark name of the dashboard",
            timeout=30,
            interval=1,
        )
        assert {r["metric"]["__name__"] for r in found["data"]["result"]} == set(names)
        targets = requests.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
        assert {(t["labels"]["servlet"], t["health"]) for t in targets} == {
            ("driver", "up"),
            ("executors", "up"),
        }
        for expr in all_exprs():
            if not metric_names(expr) & set(names):
                continue
            for macro, value in GRAFANA_MACROS.items():
                expr = expr.replace(macro, value)
            answer = query(expr)
            assert answer.get("status") == "success", (expr, answer)
    finally:
        proc.terminate()
        proc.wait(30)


def test_names_do_not_carry_the_application_id(driver) -> None:
    """spark.metrics.namespace = ecom: without it every name starts with the application
    id (metrics_local-<id>_driver_...) and changes with each driver."""
    _, texts = driver
    driver_names = served_names(texts["/metrics/prometheus"])
    assert driver_names and all(
        n.startswith("metrics_ecom_driver_") for n in driver_names if n.startswith("metrics_")
    )
