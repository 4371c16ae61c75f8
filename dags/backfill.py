"""
### Backfill

Recomputes every analytic for the run's data interval (`backfill.schedule`, hourly) from
Kafka, with the same transforms as the streaming job, into `state/tables/backfill/<analytic>`:

1. `check_interval` skips the DAG's own scheduled runs while `backfill.on_schedule` is
   false (the default); refuses (no retry) an interval Kafka's retention no longer fully
   covers, naming the partition and the oldest event left; skips the run while the input
   topic does not exist yet.
2. `recompute_interval` reads the input topic by record timestamp (the interval plus
   `backfill.margin_seconds` each side), runs the transforms in batch, and replaces the
   interval's rows of each backfill table: running it twice gives the same rows.  It then
   reconciles the interval with the streaming tables for the windows the stream has
   closed and reports any difference (late data beyond the watermark explains it; anything
   else is a bug): its **Reconciliation** button opens the report.

The DAG is never paused (Airflow runs nothing of a paused DAG, backfills included), so
`make airflow ARGS="backfill create --dag-id backfill --reprocess-behavior completed
--from-date ... --to-date ..."`, the Backfill button (*All Runs*) or `POST /api/v2/backfills`
always runs.  Reprocess `completed`: the skipped scheduled runs count as runs to Airflow.
Catch-up is off.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable

from include.analytics import ANALYTIC_NAMES
from include.assets import backfill_asset
from include.dag_defaults import START_DATE, default_args
from include.operators import BackfillOperator
from include.runtime.spark_launch import BACKFILL_APP
from include.settings import get_settings

INTERVAL_ARGS = [
    *("--start", "{{ data_interval_start }}", "--end", "{{ data_interval_end }}"),
    *("--dag-id", "{{ dag.dag_id }}", "--run-id", "{{ run_id }}"),
]


@dag(
    dag_id="backfill",
    doc_md=__doc__,
    tags=["ecommerce", "spark", "backfill"],
    default_args=default_args(),
    # A data-interval timetable: Airflow 3's plain cron schedule gives zero-length
    # intervals (start == end), and the backfill needs [start, end) to be an hour.  A
    # schedule is needed even when its runs skip: Airflow backfills only periodic DAGs.
    schedule=CronDataIntervalTimetable(get_settings().backfill.schedule, timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    # Never paused: Airflow starts no run of a paused DAG, and a backfill created as the
    # README says stayed queued for ever.  backfill.on_schedule governs the scheduled runs
    # instead (check_interval skips them), so the Spark job competes with the stream for
    # the cores only when asked to.
    is_paused_upon_creation=False,
    max_active_runs=1,
)
def backfill() -> None:
    @task
    def check_interval(data_interval_start=None, data_interval_end=None, dag_run=None) -> None:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from include.backfill import (
            Interval,
            IntervalNotRetained,
            NothingToBackfill,
            check_retention,
            scheduled_run_skip_reason,
        )
        from include.settings import get_settings

        settings = get_settings()
        skip = scheduled_run_skip_reason(dag_run.run_type, settings.backfill.on_schedule)
        if skip:
            raise AirflowSkipException(skip)
        try:
            interval = Interval(data_interval_start, data_interval_end)
        except ValueError as error:
            raise AirflowFailException(f"bad data interval: {error}") from error
        try:
            check_retention(
                settings.bootstrap_servers,
                settings.kafka.input_topic,
                interval,
                settings.backfill.margin_seconds,
            )
        except IntervalNotRetained as error:
            raise AirflowFailException(str(error)) from error  # a retry cannot bring it back
        except NothingToBackfill as error:
            raise AirflowSkipException(str(error)) from error

    recompute = BackfillOperator(
        task_id="recompute_interval",
        conn_id="spark_default",
        name="ecommerce-backfill",
        application=str(BACKFILL_APP),
        application_args=INTERVAL_ARGS,
        # The quality checks follow a rewritten interval.
        outlets=[backfill_asset(a) for a in ANALYTIC_NAMES],
    )
    check_interval() >> recompute


backfill()
