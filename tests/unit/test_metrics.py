"""The metrics endpoint's text: hand-built state in, the exposition parsed back by a parser
written here from the format's specification (not by the code under test), values compared
with the inputs; and the running totals behind the counters: once per batch id, across
restarts, rotation and writers in several processes."""

from __future__ import annotations

import json
import multiprocessing
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from include.analytics import QUERIES
from include.metrics import (
    Snapshot,
    add_totals,
    count_restart,
    exposition,
    last_quality,
    snapshot,
)
from include.producer import DeliveryStats, TotalsRecorder
from include.runtime.secrets import metrics_token
from include.settings import Settings
from include.streaming.progress import StreamTotals, read_progress, records_read
from include.ui.metrics_route import authorised
from spark_jobs.listener import ProgressRecorder

ROOT = Path(__file__).resolve().parents[2]
# The provisioned dashboard, and the importable one it replaces (while that is all there is).
DASHBOARDS = (
    ROOT / "deploy" / "grafana" / "dashboards" / "ecom-pipeline.json",
    ROOT / "docs" / "grafana" / "ecom-dashboard.json",
)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
UNESCAPE = re.compile(r"\\(.)")


def _unescape(match: re.Match) -> str:
    return "\n" if match.group(1) == "n" else match.group(1)


def parse(text: str) -> tuple[dict[str, tuple[str, str]], dict[tuple, float]]:
    """(name -> (type, help)), ((name, sorted label pairs) -> value); asserts the format's
    rules: HELP and TYPE once per family, before its samples, every line well formed."""
    families: dict[str, tuple[str, str]] = {}
    helps: dict[str, str] = {}
    samples: dict[tuple, float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in helps, f"HELP twice for {name}"
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name in helps and name not in families, line
            families[name] = (kind, helps[name])
        else:
            match = SAMPLE.match(line)
            assert match, f"malformed sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in families, f"sample before its TYPE: {line!r}"
            pairs = LABEL.findall(labels or "")
            assert "".join(f'{k}="{v}",' for k, v in pairs).rstrip(",") == (labels or "")
            unescaped = tuple(sorted((k, UNESCAPE.sub(_unescape, v)) for k, v in pairs))
            assert (name, unescaped) not in samples, f"sample twice: {line!r}"
            samples[(name, unescaped)] = float(value)
    return families, samples


def value(samples: dict[tuple, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


PROGRESS = {
    "revenue_by_category": {
        "name": "revenue_by_category",
        "timestamp": "2026-11-30T10:00:00.000Z",
        "batchId": 41,
        "numInputRows": 500,
        "inputRowsPerSecond": 50.5,
        "processedRowsPerSecond": 120.25,
        "batchDurationMs": 4150,
        "stateRowsTotal": 1234,
        "rowsDroppedByWatermark": 3,
    },
    # A record without rates (the first batch of a query): those samples are left out.
    "user_sessions": {"name": "user_sessions", "batchId": 0, "numInputRows": 0},
}
HEALTH = {
    "at": 1_790_000_000.5,
    "queries": [
        {"query": "revenue_by_category", "state": "running", "total_lag": 17},
        {"query": "user_sessions", "state": "lagging", "total_lag": 60_001},
        {"query": "click_to_purchase", "state": "not_sure", "total_lag": 0},
    ],
}
QUALITY = {
    'odd "table"\\x\n': {"status": "warn", "checks": [{"status": "pass"}, {"status": "warn"}]},
    "dead_letters": {
        "status": "fail",
        "at": "2026-11-30T09:30:00+00:00",
        "checks": [{"status": "fail"}, {"status": "fail"}, {"status": "pass"}],
    },
}


STREAM_TOTALS = {
    "last_batch_id": {"q-1": 41},
    "input_rows": 123_456,
    "batches": 42,
    "late_rows_dropped": {"revenue_by_category": 17, "dead_letters": 0},
    "output_rows": {"revenue_by_category": 900, "user_sessions": 0, "dead_letters": 31},
}
PRODUCER_TOTALS = {"sent": 150_000, "failed": 2}
RESTART_TOTALS = {"restarts": {"supervisor": 3, "restart_dag": 0}}
GAUGES = {
    "ecom_query_input_rows_per_second",
    "ecom_query_processed_rows_per_second",
    "ecom_query_batch_duration_seconds",
    "ecom_query_state_rows",
    "ecom_query_last_batch_id",
    "ecom_query_last_batch_timestamp_seconds",
    "ecom_query_lag_records",
    "ecom_supervisor_verdict",
    "ecom_supervisor_checked_timestamp_seconds",
    "ecom_quality_status",
    "ecom_quality_checks",
    "ecom_quality_checked_timestamp_seconds",
    "ecom_dead_letter_rows",
}
COUNTERS = {
    "ecom_input_rows_total",
    "ecom_output_rows_total",
    "ecom_batches_total",
    "ecom_late_rows_dropped_total",
    "ecom_dead_letters_total",
    "ecom_driver_restarts_total",
    "ecom_producer_events_sent_total",
    "ecom_producer_events_failed_total",
}


@pytest.fixture
def parsed():
    snap = Snapshot(
        progress=PROGRESS,
        health=HEALTH,
        quality=QUALITY,
        dead_letter_rows=9,
        stream_totals=STREAM_TOTALS,
        producer_totals=PRODUCER_TOTALS,
        restart_totals=RESTART_TOTALS,
    )
    return parse(exposition(snap))


def test_the_families_are_the_agreed_names_and_types(parsed) -> None:
    families, _ = parsed
    assert {n: k for n, (k, _) in families.items()} == {
        **{n: "gauge" for n in GAUGES},
        **{n: "counter" for n in COUNTERS},
    }
    assert all(help_text for _, help_text in families.values())


def test_counters_are_the_running_totals(parsed) -> None:
    _, samples = parsed
    assert value(samples, "ecom_input_rows_total") == 123_456
    assert value(samples, "ecom_batches_total") == 42
    assert value(samples, "ecom_late_rows_dropped_total", output="revenue_by_category") == 17
    assert value(samples, "ecom_late_rows_dropped_total", output="dead_letters") == 0
    assert value(samples, "ecom_output_rows_total", output="revenue_by_category") == 900
    # An output that wrote nothing yet is a 0 the driver wrote, not a made-up one.
    assert value(samples, "ecom_output_rows_total", output="user_sessions") == 0
    assert value(samples, "ecom_output_rows_total", output="dead_letters") == 31
    assert value(samples, "ecom_dead_letters_total") == 31
    # An output the driver does not write has no sample.
    assert value(samples, "ecom_output_rows_total", output="click_to_purchase") is None
    assert value(samples, "ecom_driver_restarts_total", by="supervisor") == 3
    assert value(samples, "ecom_driver_restarts_total", by="restart_dag") == 0
    assert value(samples, "ecom_producer_events_sent_total") == 150_000
    assert value(samples, "ecom_producer_events_failed_total") == 2
    # Neither the replaced per-batch gauges nor prometheus_client's _created samples.
    names = {name for name, _ in samples}
    assert not names & {"ecom_query_batch_input_rows", "ecom_query_late_rows_dropped"}
    assert not any(name.endswith("_created") for name in names)


def test_progress_figures_are_the_last_records_in_base_units(parsed) -> None:
    families, samples = parsed
    q = {"query": "revenue_by_category"}
    assert value(samples, "ecom_query_input_rows_per_second", **q) == 50.5
    assert value(samples, "ecom_query_processed_rows_per_second", **q) == 120.25
    assert value(samples, "ecom_query_batch_duration_seconds", **q) == 4.15
    assert value(samples, "ecom_query_state_rows", **q) == 1234
    assert value(samples, "ecom_query_last_batch_id", **q) == 41
    # 2026-11-30T10:00:00Z, computed by hand: 20,787 days after the epoch, plus 10 h.
    assert value(samples, "ecom_query_last_batch_timestamp_seconds", **q) == 20787 * 86400 + 36000
    assert value(samples, "ecom_query_lag_records", **q) == 17
    assert value(samples, "ecom_query_lag_records", query="user_sessions") == 60_001
    # Missing figures are absent, never a made-up 0.
    assert value(samples, "ecom_query_input_rows_per_second", query="user_sessions") is None
    assert value(samples, "ecom_query_last_batch_id", query="user_sessions") == 0
    assert value(samples, "ecom_query_state_rows", query="conversion_funnel") is None
    assert all(name.startswith("ecom_") for name in families)


def test_every_query_holds_exactly_one_verdict(parsed) -> None:
    _, samples = parsed
    held: dict[str, list[str]] = {}
    for (name, labels), v in samples.items():
        if name == "ecom_supervisor_verdict" and v == 1:
            held.setdefault(dict(labels)["query"], []).append(dict(labels)["verdict"])
    assert held == {
        "revenue_by_category": ["running"],
        "user_sessions": ["lagging"],
        "click_to_purchase": ["not_sure"],  # a verdict this module does not know yet
        "high_value_users": ["unknown"],
        "conversion_funnel": ["unknown"],
        "dead_letters": ["unknown"],
    }
    zeros = [k for k, v in samples.items() if k[0] == "ecom_supervisor_verdict" and v == 0]
    # Per query the seven known verdicts it does not hold; the one holding a new verdict
    # has all eight at 0.
    assert len(zeros) == len(QUERIES) * 7 + 1
    assert value(samples, "ecom_supervisor_checked_timestamp_seconds") == 1_790_000_000.5


def test_quality_result_per_table_and_labels_survive_escaping(parsed) -> None:
    _, samples = parsed
    odd = 'odd "table"\\x\n'
    assert value(samples, "ecom_quality_status", table=odd, status="warn") == 1
    assert value(samples, "ecom_quality_status", table=odd, status="fail") == 0
    assert value(samples, "ecom_quality_checks", table=odd, status="warn") == 1
    assert value(samples, "ecom_quality_status", table="dead_letters", status="fail") == 1
    assert value(samples, "ecom_quality_checks", table="dead_letters", status="fail") == 2
    assert value(samples, "ecom_quality_checks", table="dead_letters", status="pass") == 1
    assert value(samples, "ecom_quality_checked_timestamp_seconds", table="dead_letters") == (
        20787 * 86400 + 9.5 * 3600
    )
    assert value(samples, "ecom_dead_letter_rows") == 9


def test_an_empty_state_dir_gives_every_family_and_no_false_figures(tmp_path, monkeypatch) -> None:
    families, samples = parse(exposition(Snapshot()))
    assert {n for n, _ in samples} == {"ecom_supervisor_verdict"}
    assert set(families) == GAUGES | COUNTERS
    # The same read from a state dir nothing has written to (no totals files).
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    families, samples = parse(exposition(snapshot(Settings())))
    assert set(families) == GAUGES | COUNTERS
    assert not {n for n, _ in samples} & COUNTERS


def test_last_quality_takes_each_tables_newest_checked_result(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    runs = [
        {
            "at": "t1",
            "tables": [{"table": "a", "status": "fail"}, {"table": "b", "status": "pass"}],
        },
        {
            "at": "t2",
            "tables": [{"table": "a", "status": "pass"}, {"table": "b", "status": "skipped"}],
        },
    ]
    path = settings.paths.quality_dir / "history.jsonl"
    path.parent.mkdir(parents=True)
    # A line being written (cut) at the end is ignored.
    path.write_text("".join(json.dumps(r) + "\n" for r in runs) + '{"at": "t3", "tab')
    found = last_quality(settings)
    assert {t: (r["status"], r["at"]) for t, r in found.items()} == {
        "a": ("pass", "t2"),
        "b": ("pass", "t1"),  # t2 skipped it: its last checked result is t1's
    }
    # Only the tail is read: with a tail shorter than the last line, nothing is found.
    assert last_quality(settings, tail_bytes=10) == {}
    # Just after a rotation the runs are in history.jsonl.1 and the file itself is empty.
    path.rename(path.with_name("history.jsonl.1"))
    path.write_text("")
    assert {t: r["status"] for t, r in last_quality(settings).items()} == {"a": "pass", "b": "pass"}


def test_the_token_is_private_stable_and_required(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    token = metrics_token(settings)
    assert len(token) >= 40 and metrics_token(settings) == token
    assert stat.S_IMODE(settings.paths.metrics_token_file.stat().st_mode) == 0o600

    def request(header: str | None) -> Request:
        headers = [(b"authorization", header.encode())] if header is not None else []
        return Request({"type": "http", "headers": headers})

    assert authorised(request(f"Bearer {token}"), token)
    assert authorised(request(f"bearer {token}"), token)
    assert not authorised(request(None), token)
    assert not authorised(request(f"Bearer {token}x"), token)
    assert not authorised(request(f"Basic {token}"), token)
    assert not authorised(request("Bearer "), "")  # no token configured: nobody gets in


def test_a_missing_token_file_refuses_every_token_and_does_not_fail(tmp_path, monkeypatch):
    """[metrics] token_file (compose's secret) not there: 401 for any token, never a 500."""
    from fastapi.testclient import TestClient

    from include.ui.app import create_app

    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ECOM_METRICS__TOKEN_FILE", str(tmp_path / "no-such-secret"))
    client = TestClient(create_app(), raise_server_exceptions=False)
    for header in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        answer = client.get("/metrics", headers=header)
        assert answer.status_code == 401, (header, answer.text)
        assert "token file" in answer.text


def _panels(panels: list[dict]) -> list[dict]:
    """Every panel, those inside collapsed rows too."""
    return [q for p in panels for q in (p, *_panels(p.get("panels", [])))]


# PromQL's functions, aggregations and keywords a dashboard may use (a typo is caught).
PROMQL_WORDS = {
    "sum", "by", "without", "time", "max", "min", "on", "ignoring", "avg", "count", "rate",
    "irate", "delta", "idelta", "increase", "clamp_min", "clamp_max", "abs", "topk",
    "bottomk", "max_over_time", "min_over_time", "avg_over_time", "last_over_time",
    "changes", "resets", "absent", "vector", "scalar", "round", "group_left", "group_right",
    "label_replace", "or", "and", "unless",
}  # fmt: skip


def test_every_grafana_query_uses_only_metrics_the_endpoint_exposes() -> None:
    families, _ = parse(exposition(Snapshot()))
    dashboard_file = next((p for p in DASHBOARDS if p.exists()), None)
    assert dashboard_file, f"no dashboard at {' or '.join(map(str, DASHBOARDS))}"
    dashboard = json.loads(dashboard_file.read_text())
    panels = _panels(dashboard["panels"])
    exprs = [
        target["expr"]
        for panel in panels
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert len(exprs) >= 10
    for expr in exprs:
        names = set(re.findall(r"\b(ecom_[a-z_]+)\b", expr))
        # The other job's: the driver's Spark UI servlet (metrics_<namespace>_...).
        spark = re.findall(r"\bmetrics_[A-Za-z0-9_]+", expr)
        assert names or spark, f"no ecom_ or Spark metric in {expr!r}"
        assert names <= set(families), f"{expr!r} uses {names - set(families)}"
        words = set(re.findall(r"\b([a-z_]+)\s*\(", expr))
        assert words <= PROMQL_WORDS, f"{expr!r}: unexpected function {words - PROMQL_WORDS}"
        # A counter is only ever read through rate() or increase(): its value is since
        # whenever the state dir was made.
        for counter in names & COUNTERS:
            assert re.search(rf"\b(rate|increase|irate|resets)\s*\(\s*{counter}\b", expr), (
                f"{expr!r} reads the counter {counter} without rate() or increase()"
            )


# ---------------------------------------------------------------- the running totals


def batch(batch_id: int, start: int | None, end: int, query_id: str = "q-1", **more) -> dict:
    """A query's progress record: a batch of one source reading the input topic ``events``
    (one partition) from `start` (None: a new query's first batch) to `end`, and the idle
    rule's control topic, where it read one record.  ``numInputRows`` counts them once per
    branch reading the source (7 here), as Spark's does."""
    begun = None if start is None else {"events": {"0": start}, "control": {"0": batch_id}}
    return {
        "id": query_id,
        "name": "pipeline",
        "batchId": batch_id,
        "numInputRows": 7 * (end - (start or 0) + 1),
        "sources": [
            {
                "startOffset": begun,
                "endOffset": {"events": {"0": end}, "control": {"0": batch_id + 1}},
            }
        ],
        **more,
    }


def test_each_batch_id_is_counted_once_across_restarts(tmp_path) -> None:
    path = tmp_path / "streaming_totals.json"
    outputs = ["revenue_by_category", "dead_letters"]
    totals = StreamTotals(path, "events", outputs)
    assert totals.advance(batch(0, None, 10), {"revenue_by_category": 0, "dead_letters": 1})
    assert totals.advance(
        batch(1, 10, 30), {"revenue_by_category": 4, "dead_letters": 0}, {"revenue_by_category": 2}
    )
    totals.save()
    # A crash, then a new driver replays batch 1 (its rows were not written twice either)
    # and goes on with 2.
    again = StreamTotals(path, "events", [*outputs, "user_sessions"])
    assert not again.advance(batch(1, 10, 30), {"revenue_by_category": 4, "dead_letters": 0})
    assert again.advance(batch(2, 30, 35), {"revenue_by_category": 1, "dead_letters": 2})
    # The sink's report lost: the batch is counted, its output rows are not known; no
    # rows dropped per output known either: the query's total, under its name.
    assert again.advance(batch(3, 35, 42, rowsDroppedByWatermark=3), None)
    # A new checkpoint (another query id) numbers its batches from 0 again: counted on top.
    assert again.advance(batch(0, None, 100, query_id="q-2"), {"revenue_by_category": 50})
    again.save()
    saved = json.loads(path.read_text())
    assert (saved["input_rows"], saved["batches"]) == (10 + 20 + 5 + 7 + 100, 5)
    assert saved["output_rows"] == {
        "revenue_by_category": 0 + 4 + 1 + 50,
        "dead_letters": 1 + 0 + 2,
        "user_sessions": 0,  # written by the second driver only, from 0
    }
    assert saved["late_rows_dropped"] == {
        "revenue_by_category": 2,
        "dead_letters": 0,
        "user_sessions": 0,
        "pipeline": 3,
    }
    assert saved["last_batch_id"] == {"q-1": 3, "q-2": 0}
    assert not StreamTotals(path, "events").advance({"id": "q-2", "batchId": None}, {})
    # Without a topic named, every topic's records count (the control records too).
    assert records_read(batch(4, 0, 10), None) == 10 + 1
    assert records_read(batch(4, 0, 10), "events") == 10


class Progress(SimpleNamespace):
    """A StreamingQueryProgress event as the listener reads it: ``event.progress.json``."""

    def __init__(self, record: dict) -> None:
        super().__init__(progress=SimpleNamespace(json=json.dumps(record)))


def test_the_listener_advances_the_totals_once_per_batch_through_rotation(tmp_path) -> None:
    reports = {
        0: {"rows": {"revenue_by_category": 0, "dead_letters": 2}, "ms": {}},
        1: {"rows": {"revenue_by_category": 3, "dead_letters": 0}, "ms": {}},
        2: {"rows": {"revenue_by_category": 5, "dead_letters": 1}, "ms": {}},
    }
    # revenue's branch has the one stateful operator; the dead letters' none.
    operators = {"revenue_by_category": 1, "dead_letters": 0}
    progress = tmp_path / "metrics" / "progress.jsonl"

    def recorder() -> ProgressRecorder:
        # 600 bytes: every batch rotates the progress file.
        return ProgressRecorder(progress, 600, 2, operators, reports.get, input_topic="events")

    def event(batch_id: int, start: int | None, end: int, late: int) -> Progress:
        op = {"operatorName": "window", "numRowsTotal": 1, "numRowsDroppedByWatermark": late}
        return Progress(batch(batch_id, start, end, query_id="q", stateOperators=[op]))

    totals_file = progress.with_name("streaming_totals.json")
    first = recorder()
    # Written at the driver's start: every output at 0 before its first batch.
    assert json.loads(totals_file.read_text())["output_rows"] == {
        "revenue_by_category": 0,
        "dead_letters": 0,
    }
    first.onQueryProgress(event(0, None, 12, 0))
    first.onQueryProgress(event(1, 12, 42, 4))
    second = recorder()  # the driver restarted
    second.onQueryProgress(event(1, 12, 42, 4))  # replayed: already counted
    second.onQueryProgress(event(2, 42, 50, 1))
    saved = json.loads(totals_file.read_text())
    assert (saved["input_rows"], saved["batches"]) == (50, 3)
    assert saved["late_rows_dropped"] == {"revenue_by_category": 5, "dead_letters": 0}
    assert saved["output_rows"] == {"revenue_by_category": 8, "dead_letters": 3}
    assert progress.with_name("progress.jsonl.1").exists()  # the progress file did rotate
    assert len(read_progress(progress.parent)) < 4 * 3  # and lost its oldest lines
    _, samples = parse(exposition(Snapshot(stream_totals=saved)))
    assert value(samples, "ecom_input_rows_total") == 50
    assert value(samples, "ecom_dead_letters_total") == 3
    assert value(samples, "ecom_late_rows_dropped_total", output="revenue_by_category") == 5


def _add_many(path: str, times: int) -> None:
    for _ in range(times):
        add_totals(Path(path), {"sent": 1, "failed": 0, "by": {"a": 2}})


def test_totals_added_from_several_processes_add_up(tmp_path) -> None:
    path = tmp_path / "totals.json"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(str(path), 50)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert json.loads(path.read_text()) == {"sent": 200, "failed": 0, "by": {"a": 400}}


def test_restarts_are_counted_by_who_restarted(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    count_restart(settings, "supervisor", 0)
    _, samples = parse(exposition(snapshot(settings)))
    assert value(samples, "ecom_driver_restarts_total", by="supervisor") == 0
    assert value(samples, "ecom_driver_restarts_total", by="restart_dag") == 0
    count_restart(settings, "supervisor")
    count_restart(settings, "restart_dag")
    count_restart(settings, "supervisor")
    _, samples = parse(exposition(snapshot(settings)))
    assert value(samples, "ecom_driver_restarts_total", by="supervisor") == 2
    assert value(samples, "ecom_driver_restarts_total", by="restart_dag") == 1


def test_producer_runs_add_what_is_new_since_their_last_record(tmp_path) -> None:
    path = tmp_path / "producer_totals.json"
    one, two = TotalsRecorder(path), TotalsRecorder(path)
    a, b = DeliveryStats(), DeliveryStats()
    one.record(a)
    assert json.loads(path.read_text()) == {"sent": 0, "failed": 0}
    a.sent, b.sent = 10, 4
    one.record(a)
    two.record(b)
    a.sent, a.failed = 15, 1
    one.record(a)
    one.record(a)  # nothing new
    assert json.loads(path.read_text()) == {"sent": 19, "failed": 1}
    TotalsRecorder(None).record(a)  # no file asked for: nothing written
