"""The metrics endpoint's text: hand-built state in, the exposition parsed back by a parser
written here from the format's specification (not by the code under test), values compared
with the inputs."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from starlette.requests import Request

from include.analytics import QUERIES
from include.metrics import Snapshot, exposition, last_quality
from include.runtime.secrets import metrics_token
from include.settings import Settings
from include.ui.metrics_route import authorised

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "ecom-dashboard.json"
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


@pytest.fixture
def parsed():
    snap = Snapshot(progress=PROGRESS, health=HEALTH, quality=QUALITY, dead_letter_rows=9)
    return parse(exposition(snap))


def test_progress_figures_are_the_last_records_in_base_units(parsed) -> None:
    families, samples = parsed
    q = {"query": "revenue_by_category"}
    assert value(samples, "ecom_query_input_rows_per_second", **q) == 50.5
    assert value(samples, "ecom_query_processed_rows_per_second", **q) == 120.25
    assert value(samples, "ecom_query_batch_duration_seconds", **q) == 4.15
    assert value(samples, "ecom_query_state_rows", **q) == 1234
    assert value(samples, "ecom_query_late_rows_dropped", **q) == 3
    assert value(samples, "ecom_query_last_batch_id", **q) == 41
    # 2026-11-30T10:00:00Z, computed by hand: 20,787 days after the epoch, plus 10 h.
    assert value(samples, "ecom_query_last_batch_timestamp_seconds", **q) == 20787 * 86400 + 36000
    assert value(samples, "ecom_query_lag_records", **q) == 17
    assert value(samples, "ecom_query_lag_records", query="user_sessions") == 60_001
    # Missing figures are absent, never a made-up 0.
    assert value(samples, "ecom_query_input_rows_per_second", query="user_sessions") is None
    assert value(samples, "ecom_query_batch_input_rows", query="user_sessions") == 0
    assert value(samples, "ecom_query_state_rows", query="conversion_funnel") is None
    assert all(kind == "gauge" for kind, _ in families.values())
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


def test_an_empty_state_dir_gives_every_family_and_no_false_figures() -> None:
    families, samples = parse(exposition(Snapshot()))
    assert {n for n, _ in samples} == {"ecom_supervisor_verdict"}
    assert "ecom_dead_letter_rows" in families and "ecom_quality_status" in families


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


def test_every_grafana_query_uses_only_metrics_the_endpoint_exposes() -> None:
    families, _ = parse(exposition(Snapshot()))
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert len(exprs) >= 10
    functions = {"sum", "by", "time", "max", "min", "on", "avg", "rate", "delta", "increase"}
    for expr in exprs:
        names = set(re.findall(r"\b(ecom_[a-z_]+)\b", expr))
        assert names, f"no ecom_ metric in {expr!r}"
        assert names <= set(families), f"{expr!r} uses {names - set(families)}"
        words = set(re.findall(r"\b([a-z_]+)\s*\(", expr))
        assert words <= functions, f"{expr!r}: unexpected function {words - functions}"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
