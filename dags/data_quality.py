"""
### Data quality on every sink table

Runs the Great Expectations checks of `include/quality/checks.py` on the five analytics
tables and the dead letters (and on backfill tables a backfill has changed):

* **rows**: keys not null, revenue and totals >= 0, rates in [0, 100] or null, window
  lengths, `session_end >= session_start`, `time_to_purchase_seconds` in (0, 1800];
* **tables**: columns and types, no key written twice (exactly once), freshness against the
  input topic, revenue per window reconciled with the purchases in Kafka, dead-letter rate.

**When**: whenever a sink table changes (the supervisor and the backfill DAG emit Airflow
Asset events) and on `quality.schedule`.  **What**: only the rows committed since the last
check; trigger with `{"full": true}` to check every row, `{"tables": [...]}` to pick tables.

**Outcome**: a failed check of severity *fail* fails the task; a *warn* is logged and
reported.  The task's **Quality report** button opens this run's results; the
**Data quality** page (left nav) has the history and the GX Data Docs.
"""

from __future__ import annotations

from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag

from include.analytics import ANALYTIC_NAMES, QUERIES
from include.assets import backfill_asset, sink_asset
from include.dag_defaults import START_DATE, default_args
from include.operators import DataQualityOperator
from include.settings import get_settings


@dag(
    dag_id="data_quality",
    doc_md=__doc__,
    tags=["ecommerce", "quality"],
    default_args=default_args(),
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(get_settings().quality.schedule, timezone="UTC"),
        assets=AssetAny(
            *(sink_asset(t) for t in QUERIES), *(backfill_asset(a) for a in ANALYTIC_NAMES)
        ),
    ),
    start_date=START_DATE,
    catchup=False,
    # Table updates arriving during a run are picked up by the next one.
    max_active_runs=1,
    params={
        "full": Param(False, type="boolean", description="Check every row, not only the new ones."),
        "tables": Param(
            [],
            type="array",
            items={"type": "string", "enum": list(QUERIES)},
            description="Tables to check; empty: all of them.",
        ),
    },
)
def data_quality() -> None:
    DataQualityOperator(task_id="check_sink_tables")


data_quality()
