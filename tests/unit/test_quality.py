"""The quality checks on hand-built Delta tables: a good world passes, each fault fails.

The good tables are the independent oracle (tests/oracle.py) over generated events, written
with the sink tables' Arrow schemas; the input topic is those events held in memory.  Each
bad table breaks one thing (a duplicate window, negative revenue, stale data, one purchase
missing) and the matching check, and only it, must fail.  Great Expectations runs for real.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from include import analytics
from include.analytics import ANALYTICS, SCHEMAS
from include.generators import EventGenerator
from include.quality.checks import FAIL, WARN
from include.quality.history import read_history
from include.quality.report import PASS, DataQualityError, RunReport, raise_for_failures
from include.quality.run import NoDataYet, run_quality
from include.quality.source import RecordsInput, SourceRecord
from include.settings import Settings
from tests import oracle

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVENTS = 2400  # one every 0.5 s: 20 minutes
LAST = START + timedelta(milliseconds=500 * (EVENTS - 1))
NOW = LAST + timedelta(minutes=1)
REVENUE_TABLE = analytics.REVENUE_BY_CATEGORY.name
HIGH_VALUE_TABLE = analytics.HIGH_VALUE_USERS.name
FUNNEL_TABLE = analytics.CONVERSION_FUNNEL.name
SESSION_TABLE = analytics.USER_SESSIONS.name
CLICK_TABLE = analytics.CLICK_TO_PURCHASE.name
DEAD_LETTER_TABLE = analytics.DEAD_LETTERS.name
ORACLES = {a.name: oracle.EXPECTED[a.name] for a in ANALYTICS}
REVENUE_MATCHES_KAFKA = "revenue per window and category equals the purchases in Kafka"
NO_DUPLICATES = "no key is written twice (exactly once)"
SCHEMA = "columns and types match the table contract"


def events() -> list[dict]:
    generator = EventGenerator(seed=3, users=120, products=40)
    return list(generator.stream(START, timedelta(milliseconds=500), EVENTS))


def records(evts: list[dict], extra: list[bytes] = ()) -> list[SourceRecord]:
    """The events as input-topic records (record time = event time), then raw extras."""
    out = []
    for i, event in enumerate(evts):
        moment = oracle.event_time(event)
        out.append(
            SourceRecord(i % 3, i // 3, int(moment.timestamp() * 1000), json.dumps(event).encode())
        )
    for j, raw in enumerate(extra):
        out.append(SourceRecord(0, len(evts) // 3 + 1 + j, int(LAST.timestamp() * 1000), raw))
    return out


def write(settings: Settings, table: str, frame: pd.DataFrame, mode: str = "overwrite") -> None:
    arrow = pa.Table.from_pandas(frame, schema=SCHEMAS[table], preserve_index=False)
    write_deltalake(str(settings.paths.table_path(table)), arrow, mode=mode)


def dead_letter_rows(source: list[SourceRecord]) -> pd.DataFrame:
    rows = [
        {
            "reason": "not_json",
            "reason_code": "not_json",
            "source_topic": "ecommerce-events",
            "source_partition": r.partition,
            "source_offset": r.offset,
            "kafka_timestamp": pd.Timestamp(r.timestamp_ms, unit="ms", tz="UTC"),
            "raw_key": b"",
            "raw_value": r.value,
            "raw_value_text": None,
            "raw_value_bytes": len(r.value),
        }
        for r in source
    ]
    return pd.DataFrame(rows, columns=SCHEMAS[DEAD_LETTER_TABLE].names)


@pytest.fixture()
def world(tmp_path: Path):
    """Settings on a fresh state dir holding the good tables, plus the input records."""
    settings = Settings(state_dir=tmp_path / "state")
    evts = events()
    garbage = [b"{not json", b"\xff\xfe"]
    source = records(evts, garbage)
    for table, compute in ORACLES.items():
        write(settings, table, compute(evts, settings.analytics))
    write(settings, DEAD_LETTER_TABLE, dead_letter_rows(source[-len(garbage) :]))
    return settings, evts, source


def statuses(report: RunReport, table: str) -> dict[str, str]:
    (found,) = [t for t in report.tables if t.table == table]
    return {check.name: check.status for check in found.checks}


def failing(report: RunReport) -> set[tuple[str, str]]:
    return {(t, c.name) for t, c in report.checks_with(FAIL) + report.checks_with(WARN)}


def test_good_tables_pass_every_check_and_leave_docs_and_history(world) -> None:
    settings, _, source = world
    report = run_quality(settings, RecordsInput(source), now=NOW)

    assert failing(report) == set(), [c.describe() for _, c in report.checks_with(FAIL)]
    assert report.status == PASS
    assert {t.table for t in report.tables} == set(SCHEMAS)
    revenue = statuses(report, REVENUE_TABLE)
    assert revenue[REVENUE_MATCHES_KAFKA] == PASS and revenue[NO_DUPLICATES] == PASS
    raise_for_failures(report)  # nothing to raise
    assert report.report_path.is_file() and settings.paths.quality_dir in report.report_path.parents
    (line,) = read_history(settings)
    assert line["status"] == PASS and line["run_id"] == report.run_id
    checks = {
        c["name"]: c for t in line["tables"] for c in t["checks"] if t["table"] == REVENUE_TABLE
    }
    assert checks[REVENUE_MATCHES_KAFKA]["observed_value"] == 0
    assert checks[REVENUE_MATCHES_KAFKA]["severity"] == FAIL


def test_duplicate_window_fails_exactly_once_check(world) -> None:
    settings, evts, source = world
    good = oracle.expected_revenue_by_category(evts, settings.analytics)
    write(settings, REVENUE_TABLE, good.iloc[[5]], mode="append")

    report = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)

    assert failing(report) == {(REVENUE_TABLE, NO_DUPLICATES)}
    (check,) = [c for _, c in report.checks_with(FAIL)]
    assert check.observed_value == 1
    assert good.iloc[5]["category"] in check.describe()
    with pytest.raises(DataQualityError, match="no key is written twice"):
        raise_for_failures(report)


def test_negative_revenue_fails_range_and_reconciliation(world) -> None:
    settings, evts, source = world
    bad = oracle.expected_revenue_by_category(evts, settings.analytics)
    bad.loc[3, "total_revenue"] = Decimal("-5.00")
    write(settings, REVENUE_TABLE, bad)

    report = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)

    assert failing(report) == {
        (REVENUE_TABLE, "total_revenue >= 0"),
        (REVENUE_TABLE, REVENUE_MATCHES_KAFKA),
    }
    (range_check,) = [c for _, c in report.checks_with(FAIL) if c.name == "total_revenue >= 0"]
    assert range_check.unexpected_count == 1 and "-5.00" in range_check.describe()


def test_one_purchase_missing_fails_reconciliation_only(world) -> None:
    settings, evts, source = world
    purchases = [i for i, e in enumerate(evts) if e["event_type"] == "purchase"]
    missing = evts[purchases[len(purchases) // 2]]
    short = [e for e in evts if e is not missing]
    write(settings, REVENUE_TABLE, oracle.expected_revenue_by_category(short, settings.analytics))

    report = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)

    assert failing(report) == {(REVENUE_TABLE, REVENUE_MATCHES_KAFKA)}
    (check,) = [c for _, c in report.checks_with(FAIL)]
    # A purchase lies in two sliding windows (60 s every 30 s): both are off by its revenue.
    assert check.observed_value == 2
    assert missing["category"] in check.detail


def test_stale_tables_fail_freshness_while_events_flow(world) -> None:
    settings, evts, source = world
    later = dict(evts[-1], event_id="later", event_type="page_view")
    later.pop("revenue", None)
    moment = LAST + timedelta(minutes=45)
    later["timestamp"] = moment.isoformat()
    flowing = [
        *source,
        SourceRecord(1, 10_000, int(moment.timestamp() * 1000), json.dumps(later).encode()),
    ]

    report = run_quality(settings, RecordsInput(flowing), now=moment + timedelta(minutes=1))

    fresh = {t: c for t, c in failing(report) if c.startswith("newest")}
    assert set(fresh) == {REVENUE_TABLE, FUNNEL_TABLE, HIGH_VALUE_TABLE, CLICK_TABLE, SESSION_TABLE}
    by_table = {t: c for t, c in report.checks_with(FAIL) + report.checks_with(WARN)}
    assert by_table[REVENUE_TABLE].status == FAIL and by_table[FUNNEL_TABLE].status == FAIL
    assert by_table[SESSION_TABLE].status == WARN  # sessions trail by their 30-minute gap
    assert by_table[REVENUE_TABLE].observed_value > 44
    # The same tables with no input for an hour: freshness does not apply.
    idle = run_quality(settings, RecordsInput(source), now=LAST + timedelta(hours=1), full=True)
    assert not [c for _, c in idle.checks_with(FAIL) if c.name.startswith("newest")]


def test_high_dead_letter_rate_warns_without_failing(world) -> None:
    settings, _, source = world
    write(settings, DEAD_LETTER_TABLE, dead_letter_rows(source[:300]))

    report = run_quality(
        settings, RecordsInput(source), tables=[DEAD_LETTER_TABLE], now=NOW, full=True
    )

    (check,) = [c for _, c in report.checks_with(WARN)]
    assert check.name.startswith("dead letters at most")
    assert check.observed_value == pytest.approx(100 * 300 / len(source), abs=0.01)
    assert report.status == WARN
    raise_for_failures(report)  # a warning does not fail the task


def test_row_checks_catch_broken_values_in_every_table(world) -> None:
    settings, evts, source = world
    a = settings.analytics
    funnel = oracle.expected_conversion_funnel(evts, a)
    funnel.loc[0, "cart_conversion_rate"] = Decimal("120.00")
    funnel.loc[2, "purchase_conversion_rate"] = Decimal("-1.00")
    funnel.loc[1, "window_end"] = funnel.loc[1, "window_start"] + pd.Timedelta(minutes=2)
    write(settings, FUNNEL_TABLE, funnel)
    sessions = oracle.expected_user_sessions(evts, a)
    sessions.loc[0, "session_end"] = sessions.loc[0, "session_start"] - pd.Timedelta(seconds=1)
    write(settings, SESSION_TABLE, sessions)
    clicks = oracle.expected_click_to_purchase(evts, a)
    clicks.loc[0, "time_to_purchase_seconds"] = 0.0
    write(settings, CLICK_TABLE, clicks)

    report = run_quality(
        settings, RecordsInput(source), tables=[FUNNEL_TABLE, SESSION_TABLE, CLICK_TABLE], now=NOW
    )

    assert failing(report) == {
        (FUNNEL_TABLE, "cart_conversion_rate <= 100"),
        (FUNNEL_TABLE, "purchase_conversion_rate >= 0"),
        (FUNNEL_TABLE, f"window_end - window_start = {a.funnel_window_seconds}s"),
        (SESSION_TABLE, "session_end >= session_start"),
        (CLICK_TABLE, f"time_to_purchase_seconds in (0, {a.attribution_seconds}]"),
    }
    # Over 100 % only warns (a windowed funnel can get there honestly); below 0 fails.
    assert statuses(report, FUNNEL_TABLE)["cart_conversion_rate <= 100"] == WARN
    assert statuses(report, FUNNEL_TABLE)["purchase_conversion_rate >= 0"] == FAIL


def test_wrong_column_type_fails_schema_check(world) -> None:
    settings, evts, source = world
    frame = oracle.expected_revenue_by_category(evts, settings.analytics)
    schema = SCHEMAS[REVENUE_TABLE].set(4, pa.field("purchase_count", pa.int32()))
    write_deltalake(
        str(settings.paths.table_path(REVENUE_TABLE)),
        pa.Table.from_pandas(frame, schema=schema, preserve_index=False),
        mode="overwrite",
        schema_mode="overwrite",
    )

    report = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)

    assert failing(report) == {(REVENUE_TABLE, SCHEMA)}
    (check,) = [c for _, c in report.checks_with(FAIL)]
    assert "purchase_count is int32, expected int64" in check.detail


def test_incremental_run_checks_only_new_rows_and_full_run_all(world) -> None:
    settings, evts, source = world
    everything = oracle.expected_revenue_by_category(evts, settings.analytics)
    # Halfway through the events' 20 minutes: the first part stays within freshness.
    cut = pd.Timestamp(START + timedelta(minutes=10))
    write(settings, REVENUE_TABLE, everything[everything["window_start"] < cut])
    first = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)
    newer = everything[everything["window_start"] >= cut]
    write(settings, REVENUE_TABLE, newer, mode="append")

    second = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)
    full = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW, full=True)

    assert first.tables[0].rows_checked == len(everything) - len(newer)
    assert second.tables[0].rows_checked == len(newer)
    assert second.tables[0].versions == (1, 2)  # v0: the fixture's table, v1: the cut
    assert full.tables[0].rows_checked == len(everything)
    assert {r.status for r in (first, second, full)} == {PASS}
    assert [run["mode"] for run in read_history(settings)] == ["full", "incremental", "incremental"]


def test_no_tables_yet_is_no_data_and_unknown_table_is_refused(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "empty")
    with pytest.raises(NoDataYet, match="waiting for the streaming job"):
        run_quality(settings, RecordsInput([]))
    with pytest.raises(ValueError, match=r"unknown table.*revenue_by_categry"):
        run_quality(settings, RecordsInput([]), tables=["revenue_by_categry"])


def test_backfill_tables_are_checked_once_per_change(world) -> None:
    settings, evts, source = world
    purchase = next(e for e in evts if e["event_type"] == "purchase")
    short = [e for e in evts if e is not purchase]
    backfilled = oracle.expected_revenue_by_category(short, settings.analytics)
    write_deltalake(
        str(settings.paths.backfill_table_path(REVENUE_TABLE)),
        pa.Table.from_pandas(backfilled, schema=SCHEMAS[REVENUE_TABLE], preserve_index=False),
    )

    first = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)
    again = run_quality(settings, RecordsInput(source), tables=[REVENUE_TABLE], now=NOW)

    backfill = f"backfill/{REVENUE_TABLE}"
    assert failing(first) == {(backfill, REVENUE_MATCHES_KAFKA)}
    assert all(not c.name.startswith("newest") for c in first.tables[1].checks)
    (skipped,) = [t for t in again.tables if t.table == backfill]
    assert skipped.status == "skipped" and "unchanged" in skipped.note


def test_bad_dag_params_fail_fast_with_what_to_fix() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from include.operators import quality_params

    assert quality_params({}) == (False, None)
    assert quality_params({"full": True, "tables": [REVENUE_TABLE]}) == (True, [REVENUE_TABLE])
    with pytest.raises(AirflowFailException, match="'full' must be true or false"):
        quality_params({"full": "yes"})
    with pytest.raises(AirflowFailException, match="'tables' must be a list of table names"):
        quality_params({"tables": ["revenue"]})
