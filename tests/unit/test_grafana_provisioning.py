"""Grafana and Prometheus as code (deploy/grafana, deploy/prometheus), checked without either
server running.

Every metric the dashboard and the alert rules query must be one something emits: the
``ecom_*`` names are the families include/metrics.py's exporter writes for a snapshot with
every figure present (read back from its text, ``# TYPE`` lines and samples), counters are
only read through ``rate()``/``increase()``; Spark's names are checked against a real driver
by tests/integration/test_spark_metrics_names.py.  Every expression must parse as PromQL
(Debian's promtool, the same package as the metrics test's Prometheus), the provisioned
files must agree on the data source's uid, and the alert thresholds must be the platform's
own settings.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from include.analytics import QUERIES
from include.metrics import Snapshot, exposition
from include.runtime.tools import prometheus_binary
from include.settings import Settings
from include.settings.base import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "ecom-pipeline.json"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "ecom.yaml"
ALERTS = GRAFANA / "provisioning" / "alerting" / "ecom-alerts.yaml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DATASOURCE_UID = "ecom-prometheus"
# The classic dashboard schema of Grafana 12.0 to 12.2 (12.2 reads it as it is).
SCHEMA_VERSION = 41
# Spark's PrometheusServlet names under `spark.metrics.namespace = ecom`
# (include.runtime.spark_launch.ui_conf): the driver's and the executors' endpoints.
SPARK_PREFIXES = ("metrics_ecom_driver_", "metrics_executor_")
# What a dashboard variable or macro stands for when promtool parses an expression.
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s", "$query": ".*"}
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
COUNTER_FUNCTIONS = ("rate", "increase", "irate", "resets")


# ---------------------------------------------------------------- reading the files


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    exprs = [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard()["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
        assert match, f"variable {variable['name']}: expected label_values(...)"
        exprs.append(match.group(1))
    return exprs


def alert_exprs() -> list[str]:
    return [
        query["model"]["expr"]
        for rule in alert_rules()
        for query in rule["data"]
        if query["datasourceUid"] != "__expr__"
    ]


def all_exprs() -> list[str]:
    return dashboard_exprs() + alert_exprs()


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are no function, keyword,
    label (in braces or a by/on list), string, range or Grafana variable."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def referenced_names() -> set[str]:
    """Every metric name the dashboard and the alert rules query."""
    return {name for expr in all_exprs() for name in metric_names(expr)}


def spark_names() -> set[str]:
    """The Spark metric names the dashboard and the alert rules query (a real driver must
    emit each: tests/integration/test_spark_metrics_names.py)."""
    return {n for n in referenced_names() if n.startswith(SPARK_PREFIXES)}


def full_snapshot() -> Snapshot:
    """A snapshot with every figure the exporter knows present."""
    progress = {
        query: {
            "name": query,
            "timestamp": "2026-11-30T10:00:00.000Z",
            "batchId": 7,
            "numInputRows": 10,
            "inputRowsPerSecond": 1.5,
            "processedRowsPerSecond": 3.0,
            "batchDurationMs": 1200,
            "stateRowsTotal": 40,
            "rowsDroppedByWatermark": 1,
        }
        for query in QUERIES
    }
    health = {
        "at": 1_790_000_000,
        "queries": [{"query": q, "state": "running", "total_lag": 5} for q in QUERIES],
    }
    return Snapshot(
        progress=progress,
        health=health,
        quality={"revenue_by_category": {"status": "pass", "at": "2026-11-30T10:00:00Z"}},
        dead_letter_rows=3,
        stream_totals={
            "input_rows": 100,
            "output_rows": {query: 10 for query in QUERIES},
            "batches": 7,
            "late_rows_dropped": 2,
        },
        producer_totals={"sent": 100, "failed": 1},
        restart_totals={"restarts": {"supervisor": 1, "restart_dag": 1}},
    )


def exporter_families() -> dict[str, str]:
    """name -> type of every family and sample name in the exporter's text for
    :func:`full_snapshot` (read from the text, not from the exporter's code)."""
    kinds: dict[str, str] = {}
    for line in exposition(full_snapshot()).splitlines():
        if line.startswith("# TYPE "):
            name, kind = line[len("# TYPE ") :].split(" ")
            kinds[name] = kind
        elif line and not line.startswith("#"):
            name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group()  # type: ignore[union-attr]
            kinds.setdefault(name, "untyped")
    return kinds


def env_example(name: str) -> str | None:
    found = re.search(rf"^{name}=(.*)$", (PROJECT_ROOT / ".env.example").read_text(), re.M)
    return found.group(1).strip() if found else None


def threshold(rule: dict[str, Any]) -> float:
    """The value the rule's condition compares with."""
    (condition,) = [q for q in rule["data"] if q["refId"] == rule["condition"]]
    (check,) = condition["model"]["conditions"]
    return check["evaluator"]["params"][0]


def rule(uid: str) -> dict[str, Any]:
    (found,) = [r for r in alert_rules() if r["uid"] == uid]
    return found


def alert_exprs_of(r: dict[str, Any]) -> str:
    """The rule's PromQL, its queries joined."""
    return " ".join(q["model"]["expr"] for q in r["data"] if q["datasourceUid"] != "__expr__")


def promtool(*args: str) -> str:
    """Debian's promtool (beside its Prometheus) run with `args`; its output, asserted a
    success."""
    checked = subprocess.run(
        [str(prometheus_binary(Settings()).with_name("promtool")), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    return Settings()


# ---------------------------------------------------------------- the metric names


def test_the_name_reader_finds_metrics_and_nothing_else() -> None:
    expr = (
        '100 * sum by (output) (increase(a_total{x="y",q=~"$query"}[$__rate_interval])) '
        "/ on (query) group_left (b) (max(b_seconds offset 5m) > 1e3) and time() - c"
    )
    assert metric_names(expr) == {"a_total", "b_seconds", "c"}


def test_every_ecom_metric_queried_is_one_the_exporter_writes() -> None:
    families = exporter_families()
    ecom = {n for n in referenced_names() if n.startswith("ecom_")}
    # The ones the dashboard must show (catalogue of the issue), by name.
    assert {
        "ecom_input_rows_total",
        "ecom_output_rows_total",
        "ecom_dead_letters_total",
        "ecom_late_rows_dropped_total",
        "ecom_driver_restarts_total",
        "ecom_producer_events_sent_total",
        "ecom_producer_events_failed_total",
        "ecom_query_lag_records",
        "ecom_supervisor_verdict",
        "ecom_quality_status",
    } <= ecom
    assert ecom <= set(families), f"not written by include/metrics.py: {ecom - set(families)}"


def test_counters_are_read_as_rates_and_gauges_as_they_are() -> None:
    families = exporter_families()
    counters = {n for n, kind in families.items() if kind == "counter"}
    assert counters, "the exporter writes no counter"
    for expr in all_exprs():
        wrapped = re.findall(rf"\b(?:{'|'.join(COUNTER_FUNCTIONS)})\s*\(\s*(ecom_\w+)", expr)
        for name in wrapped:
            assert name in counters, f"{expr!r}: {name} is a {families.get(name)}, not a counter"
        for name in metric_names(expr) & counters:
            assert expr.count(name) == wrapped.count(name), f"{expr!r}: bare counter {name}"


def test_every_other_name_is_sparks_own_or_a_scrape_jobs_up() -> None:
    jobs = {job["job_name"] for job in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]}
    others = {n for n in referenced_names() if not n.startswith("ecom_")}
    assert others - spark_names() <= {"up"}, others - spark_names()
    assert spark_names(), "the dashboard shows none of Spark's own metrics"
    for expr in all_exprs():
        for job in re.findall(r'\bup\{job="([^"]+)"\}', expr):
            assert job in jobs, f"{expr!r}: Prometheus has no job {job}"
    # The files under deploy/ mention no other metric either (comments, descriptions).
    for path in [*GRAFANA.rglob("*"), *PROMETHEUS.parent.rglob("*")]:
        if path.is_file():
            mentioned = set(
                re.findall(r"\b(?:ecom|metrics_ecom|metrics_executor)_\w+", path.read_text())
            )
            assert mentioned <= referenced_names(), f"{path}: {mentioned - referenced_names()}"


def test_every_expression_parses_as_promql(tmp_path) -> None:
    rules = []
    for n, expr in enumerate(all_exprs()):
        for macro, value in GRAFANA_MACROS.items():
            expr = expr.replace(macro, value)
        assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
        rules.append({"alert": f"expression_{n}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "all", "rules": rules}]}))
    assert f"{len(rules)} rules found" in promtool("check", "rules", "--lint=none", str(path))


# ---------------------------------------------------------------- the dashboard


def test_the_dashboard_is_provisionable_as_it_is() -> None:
    text = DASHBOARD.read_text()
    board = json.loads(text)
    assert "${DS_" not in text and "__inputs" not in board
    assert board["uid"] == "ecom-pipeline" and board["id"] is None
    assert board["schemaVersion"] == SCHEMA_VERSION
    ref = {"type": "prometheus", "uid": DATASOURCE_UID}
    with_targets = [p for p in board["panels"] if p.get("targets")]
    assert len(with_targets) >= 30
    for panel in with_targets:
        assert panel["datasource"] == ref, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ref, panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == ref, variable["name"]
    kinds = {p["type"] for p in board["panels"]}
    required = {r["id"] for r in board["__requires"] if r["type"] == "panel"}
    assert kinds - {"row"} == required


def test_the_dashboard_requires_the_grafana_compose_runs() -> None:
    image = env_example("GRAFANA_IMAGE")
    assert image, ".env.example has no GRAFANA_IMAGE (docker compose's Grafana)"
    assert image.startswith("grafana/grafana:"), image
    (grafana,) = [r for r in dashboard()["__requires"] if r["type"] == "grafana"]
    assert grafana["version"] == image.split(":", 1)[1]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_the_dashboards_lines_are_the_alerts_thresholds(settings) -> None:
    def steps(title: str) -> list[float]:
        (panel,) = [p for p in dashboard()["panels"] if p["title"] == title]
        found = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        return [s["value"] for s in found if s["value"] is not None]

    assert steps("Lag (records behind the input topic)") == [
        settings.supervisor.lag_warning_records
    ]
    assert steps("Dead-letter share of input (10 min)") == [
        settings.quality.dead_letter_alarm_percent
    ]
    # The panel shows what the alert computes.
    (share,) = [p for p in dashboard()["panels"] if p["title"].startswith("Dead-letter share")]
    alert = alert_exprs_of(rule("ecom-dead-letter-share"))
    assert " ".join(share["targets"][0]["expr"].split()) == " ".join(alert.split())


# ---------------------------------------------------------------- provisioning and alerts


def test_the_datasource_and_the_provider_match_compose() -> None:
    (source,) = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    scrape = yaml.safe_load(PROMETHEUS.read_text())["global"]["scrape_interval"]
    # $__rate_interval is four of Grafana's timeInterval: it must be the scrape interval.
    assert source["jsonData"]["timeInterval"] == scrape == "15s"
    (provider,) = yaml.safe_load(PROVIDER.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_alert_rules_are_complete_and_query_the_provisioned_source() -> None:
    doc = yaml.safe_load(ALERTS.read_text())
    assert doc["apiVersion"] == 1
    rules = alert_rules()
    assert len({r["uid"] for r in rules}) == len(rules)
    for group in doc["groups"]:
        assert group["folder"] and group["interval"]
    for r in rules:
        refs = {q["refId"] for q in r["data"]}
        assert r["condition"] in refs, r["title"]
        for query in r["data"]:
            assert query["datasourceUid"] in {DATASOURCE_UID, "__expr__"}, r["title"]
            assert query["model"]["refId"] == query["refId"]
            if query["datasourceUid"] == "__expr__":
                assert query["model"]["expression"] in refs - {query["refId"]}, r["title"]
        assert r["noDataState"] in {"OK", "NoData", "Alerting", "KeepLast"}
        assert r["execErrState"] in {"OK", "Error", "Alerting", "KeepLast"}
        assert r["labels"]["severity"] in {"critical", "warning"}
        assert r["annotations"]["summary"], r["title"]
        # Grafana interpolates ${VAR} in provisioned annotations: none may slip in.
        assert "${" not in json.dumps(r["annotations"]), r["title"]


def test_alert_thresholds_are_the_platforms_settings(settings) -> None:
    assert {r["uid"] for r in alert_rules()} >= {
        "ecom-query-dead-or-stalled",
        "ecom-query-no-batch",
        "ecom-lag-growing",
        "ecom-dead-letter-share",
    }
    dead = rule("ecom-query-dead-or-stalled")
    assert 'verdict=~"dead|stalled"' in alert_exprs_of(dead)
    assert threshold(rule("ecom-query-no-batch")) == settings.supervisor.stall_seconds
    assert "ecom_query_last_batch_timestamp_seconds" in alert_exprs_of(rule("ecom-query-no-batch"))
    lag = rule("ecom-lag-growing")
    assert threshold(lag) == settings.supervisor.lag_warning_records
    assert "deriv(ecom_query_lag_records[10m])" in alert_exprs_of(lag)
    share = rule("ecom-dead-letter-share")
    assert threshold(share) == settings.quality.dead_letter_alarm_percent
    window = f"[{settings.quality.dead_letter_alarm_minutes}m]"
    expr = alert_exprs_of(share)
    assert expr.count(window) == 2 and "[" not in expr.replace(window, "")


# ---------------------------------------------------------------- Prometheus


def test_prometheus_config_is_valid_and_scrapes_what_compose_serves() -> None:
    promtool("check", "config", "--syntax-only", str(PROMETHEUS))
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["global"]["scrape_interval"] == "15s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ecom = jobs["ecom"]
    assert ecom["metrics_path"] == "/ecom/metrics"
    assert ecom["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert [t for g in ecom["static_configs"] for t in g["targets"]] == ["airflow-apiserver:8080"]
    spark = jobs["spark-driver"]
    paths = {
        (target, group["labels"]["__metrics_path__"])
        for group in spark["static_configs"]
        for target in group["targets"]
    }
    assert paths == {
        ("airflow-scheduler:4040", "/metrics/prometheus"),
        ("airflow-scheduler:4040", "/metrics/executors/prometheus"),
    }
    # Two targets of one address: a label of their own keeps their `up` series apart.
    labels = [
        {k: v for k, v in g["labels"].items() if not k.startswith("__")}
        for g in spark["static_configs"]
    ]
    assert len({json.dumps(x, sort_keys=True) for x in labels}) == len(labels)
