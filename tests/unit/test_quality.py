"""Unit tests for include.quality: hand-built revenue tables, good and deliberately broken."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from include.quality import (
    DataQualityError,
    NoDataYet,
    QualityReport,
    raise_for_failures,
    run_revenue_checks,
)
from include.settings import Settings, get_settings

WINDOW = pd.Timedelta(seconds=60)
CATEGORIES = ("books", "electronics", "toys")

# Check names as the module words them (window length follows the default 60 s setting).
NOT_NULL_CATEGORY = "category is not null"
COLUMN_SET = (
    "columns are exactly "
    "window_start, window_end, category, total_revenue, purchase_count, avg_order_value"
)
REVENUE_NON_NEGATIVE = "total_revenue >= 0"
WINDOW_LENGTH = "window_end - window_start = 60s"
UNIQUE_KEY = "(window_start, category) is unique"


def good_frame() -> pd.DataFrame:
    """Four sliding windows x three categories with internally consistent numbers."""
    rows = []
    start0 = pd.Timestamp("2026-01-01 12:00:00", tz="UTC")
    for w in range(4):
        start = start0 + pd.Timedelta(seconds=30 * w)
        for c, category in enumerate(CATEGORIES):
            count = 1 + w + c
            avg = Decimal("12.50") + c
            rows.append(
                {
                    "window_start": start,
                    "window_end": start + WINDOW,
                    "category": category,
                    "total_revenue": avg * count,
                    "purchase_count": count,
                    "avg_order_value": avg,
                }
            )
    return pd.DataFrame(rows).astype({"purchase_count": "int64"})


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    # One state dir (and so one GX context) for the frame-based tests: re-using it also
    # proves that repeated runs against an existing context are idempotent.
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(state))
        mp.delenv("ECOM_CONFIG_FILE", raising=False)
        yield get_settings()


@pytest.fixture
def fresh_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("ECOM_CONFIG_FILE", raising=False)
    return get_settings()


def failing_names(report: QualityReport) -> set[str]:
    return {check.name for check in report.failures}


def test_good_table_passes_and_writes_data_docs(settings: Settings) -> None:
    report = run_revenue_checks(settings, good_frame())

    assert report.success, [c.describe() for c in report.failures]
    assert report.row_count == 12
    assert len(report.checks) == 9
    assert all(check.success for check in report.checks)
    assert report.report_path.is_absolute()
    assert report.report_path.name == "index.html"
    assert report.report_path.is_file()
    assert settings.quality_dir in report.report_path.parents
    raise_for_failures(report)  # must not raise


def test_rerun_is_idempotent_and_history_has_one_line_per_run(settings: Settings) -> None:
    history = settings.quality_dir / "history.jsonl"
    before = history.read_text().splitlines() if history.exists() else []

    first = run_revenue_checks(settings, good_frame())
    second = run_revenue_checks(settings, good_frame())

    assert first.success and second.success
    assert first.report_path == second.report_path
    lines = history.read_text().splitlines()
    assert len(lines) == len(before) + 2
    entry = json.loads(lines[-1])
    assert entry["table"] == "revenue_by_category"
    assert entry["success"] is True
    assert entry["row_count"] == 12
    assert {c["name"] for c in entry["checks"]} >= {UNIQUE_KEY, WINDOW_LENGTH}
    assert all(c["success"] for c in entry["checks"])


def test_duplicate_key_fails_only_uniqueness(settings: Settings) -> None:
    frame = good_frame()
    frame = pd.concat([frame, frame.iloc[[4]]], ignore_index=True)

    report = run_revenue_checks(settings, frame)

    assert not report.success
    assert failing_names(report) == {UNIQUE_KEY}
    (check,) = report.failures
    assert check.expectation == "expect_compound_columns_to_be_unique"
    assert check.columns == ("window_start", "category")
    assert check.unexpected_count == 2  # both copies of the key
    with pytest.raises(
        DataQualityError, match=r"\(window_start, category\) is unique: 2 rows violate"
    ):
        raise_for_failures(report)


def test_negative_revenue_fails_only_revenue_check(settings: Settings) -> None:
    frame = good_frame()
    frame.loc[3, "total_revenue"] = Decimal("-5.00")

    report = run_revenue_checks(settings, frame)

    assert failing_names(report) == {REVENUE_NON_NEGATIVE}
    (check,) = report.failures
    assert check.unexpected_count == 1
    assert check.sample == [-5.0]
    with pytest.raises(DataQualityError) as excinfo:
        raise_for_failures(report)
    message = str(excinfo.value)
    assert "total_revenue >= 0: 1 row violates (sample: -5.00)" in message
    assert f"Data quality report: {report.report_path}" in message


def test_two_minute_window_fails_only_window_length(settings: Settings) -> None:
    frame = good_frame()
    frame.loc[0, "window_end"] = frame.loc[0, "window_start"] + pd.Timedelta(minutes=2)

    report = run_revenue_checks(settings, frame)

    assert failing_names(report) == {WINDOW_LENGTH}
    (check,) = report.failures
    assert check.columns == ("window_length_seconds",)
    assert check.unexpected_count == 1
    with pytest.raises(
        DataQualityError, match=r"window_end - window_start = 60s: 1 row violates \(sample: 120\)"
    ):
        raise_for_failures(report)


def test_null_category_fails_only_not_null(settings: Settings) -> None:
    frame = good_frame()
    frame.loc[5, "category"] = None

    report = run_revenue_checks(settings, frame)

    assert failing_names(report) == {NOT_NULL_CATEGORY}
    (check,) = report.failures
    assert check.unexpected_count == 1
    with pytest.raises(DataQualityError, match="category is not null: 1 row violates"):
        raise_for_failures(report)


def test_unexpected_column_fails_column_set(settings: Settings) -> None:
    frame = good_frame().assign(debug_flag=True)

    report = run_revenue_checks(settings, frame)

    (check,) = report.failures
    assert check.expectation == "expect_table_columns_to_match_set"
    assert "debug_flag" in check.describe()


def test_missing_table_raises_no_data_yet(fresh_settings: Settings) -> None:
    with pytest.raises(NoDataYet, match="does not exist yet"):
        run_revenue_checks(fresh_settings)
    assert not (fresh_settings.quality_dir / "history.jsonl").exists()


def test_too_few_rows_raises_no_data_yet(fresh_settings: Settings) -> None:
    with pytest.raises(NoDataYet, match="fewer than the 1 required"):
        run_revenue_checks(fresh_settings, good_frame().iloc[:0])


def test_reads_delta_table_written_to_disk(fresh_settings: Settings) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    frame = good_frame()
    schema = pa.schema(
        [
            ("window_start", pa.timestamp("us", tz="UTC")),
            ("window_end", pa.timestamp("us", tz="UTC")),
            ("category", pa.string()),
            ("total_revenue", pa.decimal128(18, 2)),
            ("purchase_count", pa.int64()),
            ("avg_order_value", pa.decimal128(18, 2)),
        ]
    )
    path = fresh_settings.table_path("revenue_by_category")
    write_deltalake(str(path), pa.Table.from_pandas(frame, schema=schema, preserve_index=False))

    report = run_revenue_checks(fresh_settings)

    assert report.success, [c.describe() for c in report.failures]
    assert report.row_count == len(frame)
    assert report.report_path.is_file()
    history = (fresh_settings.quality_dir / "history.jsonl").read_text().splitlines()
    assert len(history) == 1


def test_missing_column_is_reported_not_crashed(settings: Settings) -> None:
    frame = good_frame().drop(columns=["avg_order_value"])

    report = run_revenue_checks(settings, frame)

    assert failing_names(report) == {
        "avg_order_value >= 0",
        COLUMN_SET,
    }
    by_name = {check.name: check for check in report.checks}
    assert by_name["avg_order_value >= 0"].error is not None
    assert [c.name for c in report.checks][:3] == [
        "window_start is not null",
        "window_end is not null",
        "category is not null",
    ]
    with pytest.raises(DataQualityError, match="avg_order_value >= 0: could not be evaluated"):
        raise_for_failures(report)
