"""The backfill's reconciliation pages, the task's Reconciliation link and the rule that
skips the DAG's own scheduled runs.

The pages are rendered by the plugin's real FastAPI app (in-process, Airflow's login
replaced by a fixed user; tests/ui/ checks the login itself) from a report written by
include.backfill.write_report, the backfill application's own writer, with numbers chosen
here, so every figure the page must show is known beforehand.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from airflow.sdk.api.datamodels._generated import DagRunType
from fastapi.testclient import TestClient

from include.backfill import Interval, report_path, scheduled_run_skip_reason, write_report
from include.operators import ReconciliationLink
from include.settings import Settings
from include.streaming.progress import progress_path
from tests.ui.backfill_page import analytic_cells, differing_rows, logged_in_app

START = datetime(2026, 11, 26, 10, tzinfo=UTC)
INTERVAL = Interval(START, START + timedelta(hours=1))
RUN_ID = "backfill__2026-11-26T10:00:00+00:00"
LATE_ROW = {
    "window_start": "2026-11-26T10:20:00.000Z",
    "window_end": "2026-11-26T10:21:00.000Z",
    "category": "Books",
    "total_revenue": 59.98,
    "purchases": 2,
}
ANALYTICS = {
    # Two late purchases: the stream's row for one window has the old total (only in the
    # stream), the backfill's the new one, and a window the stream never wrote.
    "revenue_by_category": {
        "rows": 240,
        "compared": 200,
        "streaming_rows": 199,
        "only_in_backfill": 2,
        "only_in_stream": 1,
        "duplicate_keys_in_stream": 0,
        "up_to": "2026-11-26 10:40:00",
        "examples": {"only_in_backfill": [LATE_ROW], "only_in_stream": []},
    },
    "conversion_funnel": {
        "rows": 56,
        "compared": 41,
        "streaming_rows": 41,
        "only_in_backfill": 0,
        "only_in_stream": 0,
        "duplicate_keys_in_stream": 0,
        "up_to": "2026-11-26 10:40:00",
        "examples": {"only_in_backfill": [], "only_in_stream": []},
    },
    "high_value_users": {
        "rows": 30,
        "compared": 25,
        "streaming_rows": 25,
        "only_in_backfill": 0,
        "only_in_stream": 0,
        "duplicate_keys_in_stream": 1,
        "up_to": "2026-11-26 10:35:00",
        "examples": {"only_in_backfill": [], "only_in_stream": []},
    },
    "user_sessions": {
        "rows": 12,
        "compared": 0,
        "note": "the stream has no rows in this interval yet",
    },
}


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    return Settings()


@pytest.fixture
def client(settings) -> TestClient:
    # Logged in, with a role that reads every DAG (the roles are tested on a real Airflow:
    # tests/ui/test_roles.py).
    return TestClient(logged_in_app())


def progress(settings: Settings, *records: tuple[datetime, str, int]) -> None:
    path = progress_path(settings.paths.metrics_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        for moment, query, dropped in records:
            line = {"timestamp": moment.isoformat(), "name": query}
            handle.write(json.dumps({**line, "rowsDroppedByWatermark": dropped}) + "\n")


def test_the_report_page_shows_each_analytic_its_differences_and_their_cause(
    settings, client
) -> None:
    write_report(settings, INTERVAL, ANALYTICS, {"dag_id": "backfill", "run_id": RUN_ID})
    # Revenue rows dropped as late: 5 before the interval began (not its events), 3 after.
    progress(
        settings,
        (START - timedelta(minutes=5), "revenue_by_category", 5),
        (START + timedelta(minutes=30), "revenue_by_category", 3),
        (START + timedelta(minutes=31), "conversion_funnel", 0),
    )
    link = ReconciliationLink().get_link(
        None, ti_key=SimpleNamespace(dag_id="backfill", run_id=RUN_ID, task_id="x")
    )
    assert link == f"/ecom/backfill/run?dag_id=backfill&run_id={quote(RUN_ID, safe='')}"
    page = client.get(link.removeprefix("/ecom"))
    assert page.status_code == 200
    html = page.text
    assert 'id="report-status">differs<' in html
    assert 'id="total-differences">4<' in html  # 2 + 1 revenue rows, 1 key twice, 0 else

    shown = analytic_cells(html)
    revenue = shown["revenue_by_category"]
    assert (revenue["verdict"], revenue["rows"], revenue["compared"]) == ("differs", "240", "200")
    assert (revenue["only-in-backfill"], revenue["only-in-stream"], revenue["late"]) == (
        "2",
        "1",
        "3",
    )
    assert "late data explains it" in revenue["explanation"]
    funnel = shown["conversion_funnel"]
    assert (funnel["verdict"], funnel["compared"], funnel["late"]) == ("matches", "41", "0")
    assert funnel["explanation"] == (
        "all 41 rows up to 2026-11-26 10:40:00 equal the streaming table's"
    )
    high_value = shown["high_value_users"]
    assert (
        high_value["verdict"] == "differs"
        and "exactly-once was broken" in (high_value["explanation"])
    )
    sessions = shown["user_sessions"]
    assert sessions["verdict"] == "not compared"
    assert sessions["explanation"] == "the stream has no rows in this interval yet"
    # Which rows: the late window, with its values.
    assert differing_rows(html, "revenue_by_category", "only-in-backfill") == [
        {column: str(value) for column, value in LATE_ROW.items()}
    ]
    assert differing_rows(html, "revenue_by_category", "only-in-stream") == []

    # The index lists it; the report's own address shows the same page.
    index = client.get("/backfill").text
    assert f'data-report="{report_path(settings, INTERVAL).stem}"' in index
    assert re.search(r'class="num differences">4<', index)
    assert client.get(f"/backfill/{report_path(settings, INTERVAL).stem}").text == html


def test_a_run_without_a_report_says_why_and_unknown_reports_are_not_found(
    settings, client
) -> None:
    page = client.get("/backfill/run", params={"dag_id": "backfill", "run_id": "scheduled__x"})
    assert page.status_code == 200 and "No reconciliation for this run" in page.text
    assert "the DAG's own schedule is off" in unescape(page.text)
    assert "No backfill yet" in client.get("/backfill").text
    missing = client.get("/backfill/run", params={"dag_id": "backfill"})
    assert (missing.status_code, missing.text) == (
        400,
        "give dag_id and run_id of a backfill DAG run",
    )
    write_report(settings, INTERVAL, ANALYTICS, None)
    for name in ("nothing", "..%2F..%2Fhealth", "20261126T100000--20261126T110000.json"):
        answer = client.get(f"/backfill/{name}")
        assert answer.status_code == 404 and answer.text == "Not found.", name


def test_the_pages_are_refused_without_a_login(settings) -> None:
    from include.ui.app import create_app

    write_report(settings, INTERVAL, ANALYTICS, {"dag_id": "backfill", "run_id": RUN_ID})
    anonymous = TestClient(create_app())
    for page in ("/backfill", f"/backfill/{report_path(settings, INTERVAL).stem}"):
        assert anonymous.get(page).status_code == 401, page


@pytest.mark.parametrize(
    ("run_type", "on_schedule", "skips"),
    [
        (DagRunType.SCHEDULED, False, True),
        ("scheduled", False, True),
        (DagRunType.SCHEDULED, True, False),
        (DagRunType.BACKFILL, False, False),
        (DagRunType.MANUAL, False, False),
    ],
)
def test_only_scheduled_runs_skip_while_the_schedule_is_off(run_type, on_schedule, skips) -> None:
    reason = scheduled_run_skip_reason(run_type, on_schedule)
    assert (reason is not None) == skips
    if skips:
        assert "on_schedule = true" in reason and "ECOM_BACKFILL__ON_SCHEDULE=true" in reason
        assert "reprocess behaviour 'completed'" in reason  # how to backfill this interval


def test_the_differing_rows_are_kept_as_json_by_time_key_at_most_twenty(spark) -> None:
    from decimal import Decimal

    from spark_jobs.backfill_app import EXAMPLE_ROWS, _examples

    rows = [
        (datetime(2026, 11, 26, 10, minute, tzinfo=UTC), "Books", Decimal("19.99"), ["a", "b"])
        for minute in reversed(range(25))
    ]
    frame = spark.createDataFrame(
        rows,
        "window_start timestamp, category string, total_revenue decimal(18,2), ids array<string>",
    )
    kept = _examples(frame, "window_start")
    assert len(kept) == EXAMPLE_ROWS == 20
    assert kept[0] == {
        "window_start": "2026-11-26T10:00:00.000Z",
        "category": "Books",
        "total_revenue": 19.99,
        "ids": ["a", "b"],
    }
    assert kept[-1]["window_start"] == "2026-11-26T10:19:00.000Z"
