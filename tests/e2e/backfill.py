"""A backfill made the README's way runs in the running platform, and its reconciliation
page shows no difference with the stream.

Called by tests/e2e/test_platform.py once the fault campaign has ended: by then the events
have stopped and page views far ahead have closed every window and session, and the stream's
tables equal the oracle, so a backfill of any interval must equal them too.  The platform runs
with ``ECOM_BACKFILL__SCHEDULE="*/5 * * * *"`` (five-minute intervals: Airflow backfills only
intervals that have ended, and the test streams for minutes, not hours) and the shipped
``on_schedule = false``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
from croniter import croniter

from include.runtime.airflow_api import AirflowApi
from include.settings import Settings
from include.tables import read_table
from tests.conftest import poll
from tests.ui.backfill_page import analytic_cells

DAG_ID = "backfill"
BACKFILL_TIMEOUT = 480  # queued -> Spark start-up, six analytics, reconciliation, on 2 cores


def interval_of(moment: datetime, schedule: str) -> tuple[datetime, datetime]:
    """The data interval of the cron `schedule` that holds `moment`."""
    start = croniter(schedule, moment + timedelta(microseconds=1)).get_prev(datetime)
    return start, croniter(schedule, start).get_next(datetime)


def first_ended_interval(settings: Settings) -> tuple[datetime, datetime]:
    """The oldest interval that holds revenue windows the stream has written, once it has
    ended (waited for: a fast run can reach this check before any has, and Airflow refuses
    to backfill an interval still running)."""
    revenue = read_table(settings.paths.table_path("revenue_by_category"))
    assert revenue is not None and not revenue.empty, "no revenue rows to backfill"
    oldest = pd.to_datetime(revenue["window_start"], utc=True).min()
    first = interval_of(oldest.to_pydatetime(), settings.backfill.schedule)
    wait = (first[1] - datetime.now(UTC)).total_seconds()
    if wait > 0:
        print(f"waiting {wait:.0f} s for the interval {first[0]:%H:%M}-{first[1]:%H:%M} to end")
        time.sleep(wait + 1)
    return first


def check_backfill_runs(api: AirflowApi, settings: Settings) -> None:
    """POST /api/v2/backfills (what `airflow backfill create` does) for one ended interval:
    it runs to success with the DAG's own schedule off, its scheduled runs skipped, and the
    task's Reconciliation page shows every analytic matching the stream, revenue with rows."""
    assert not settings.backfill.on_schedule, "this check is about the shipped default"
    assert api.dag(DAG_ID)["is_paused"] is False, "a paused DAG runs no backfill"
    # The DAG's own runs (one per ended interval since it was loaded) did nothing.
    runs = api.runs_of_type(DAG_ID, "scheduled")
    scheduled = [r for r in runs if r["state"] in {"success", "failed"}]
    assert scheduled, "the DAG has no finished scheduled run: is it scheduled at all?"
    for run in scheduled:
        states = {t["task_id"]: t["state"] for t in api.task_instances(DAG_ID, run["dag_run_id"])}
        assert set(states.values()) <= {"skipped", None}, (run["dag_run_id"], states)

    start, end = first_ended_interval(settings)
    # The interval's own scheduled run starts as it ends, and a backfill leaves a date whose
    # run is not finished alone (reprocess "completed"): created a second after the end, one
    # once found nothing to do.  So wait for that run (it skips in seconds).
    poll(
        lambda: [
            r["state"]
            for r in api.runs_of_type(DAG_ID, "scheduled")
            if pd.Timestamp(r["data_interval_start"]) == pd.Timestamp(start)
        ],
        # None at all 30 s after the end: the DAG was loaded after the interval began.
        lambda states: (
            states in (["success"], ["failed"])
            or (not states and datetime.now(UTC) > end + timedelta(seconds=30))
        ),
        f"the scheduled run of {start.isoformat()} to finish",
        timeout=120,
    )
    backfill = api.create_backfill(DAG_ID, start, start)
    assert backfill["is_paused"] is False, backfill
    (run,) = poll(
        lambda: [
            r
            for r in api.runs_of_type(DAG_ID, "backfill")
            if pd.Timestamp(r["data_interval_start"]) == pd.Timestamp(start)
        ],
        lambda runs: len(runs) == 1,
        f"the backfill run of {start.isoformat()}",
        timeout=60,
    )
    run_id = run["dag_run_id"]
    assert pd.Timestamp(run["data_interval_end"]) == pd.Timestamp(end), run
    state = api.wait_for_run(DAG_ID, run_id, {"success"}, timeout=BACKFILL_TIMEOUT)
    assert state == "success", (
        f"backfill run {run_id} ended {state}; see {settings.paths.log_dir / 'airflow'}"
    )
    states = {t["task_id"]: t["state"] for t in api.task_instances(DAG_ID, run_id)}
    assert states == {"check_interval": "success", "recompute_interval": "success"}, states

    link = api.task_links(DAG_ID, run_id, "recompute_interval")["Reconciliation"]
    page = api.page(link)
    assert page.status_code == 200 and 'id="report-status"' in page.text, page.text[:500]
    assert 'id="total-differences">0<' in page.text, page.text
    cells = analytic_cells(page.text)
    assert cells["revenue_by_category"]["verdict"] == "matches", cells
    assert int(cells["revenue_by_category"]["compared"].replace(",", "")) > 0, cells
    for analytic, row in cells.items():
        assert row["verdict"] in {"matches", "not compared"}, (analytic, row)
