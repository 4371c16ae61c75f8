"""
### Scheduled streaming restart

Restarts the streaming driver on `spark.restart_schedule` (cron, UTC; nightly by default,
empty to turn off): a graceful stop at a micro-batch boundary (a hard kill only after
`supervisor.stop_timeout_seconds`, logged as such), then a new `streaming` run.  A restart
picks up new code and config; the driver backs up any checkpoint whose code or config
changed before resuming it.  Nothing running, or a driver started after the slot, means
nothing to restart.  The first run is the next slot after the DAG appears, never a past one.
A scheduled run that starts more than 15 minutes after its slot (one missed while Airflow
was down) skips it: the next slot restarts.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from include.dag_defaults import RESTART_DAG, STREAMING_DAG, default_args
from include.settings import get_settings

log = logging.getLogger(__name__)

# Reads config/platform.toml only (no connection): allowed at parse time.
RESTART_CRON = get_settings().spark.restart_schedule


@dag(
    dag_id=RESTART_DAG,
    doc_md=__doc__,
    tags=["ecommerce", "streaming", "operations"],
    default_args=default_args(),
    # A plain cron string runs the latest past slot as soon as the DAG appears when it
    # passed less than a tenth of the period ago (2.4 h for a nightly slot; catch-up off
    # still runs it), and a start date makes Airflow run it whenever it is: either is a
    # restart of the driver the platform has just started.  `run_immediately` of zero
    # and no start date make the first run the next slot.
    schedule=(
        CronTriggerTimetable(RESTART_CRON, timezone="UTC", run_immediately=timedelta(0))
        if RESTART_CRON
        else None
    ),
    catchup=False,
    max_active_runs=1,
)
def streaming_restart() -> None:
    @task.short_circuit
    def stop_driver_gracefully() -> bool:
        from include.analytics import QUERIES
        from include.streaming.supervisor import missed_slot, restart_gracefully

        context = get_current_context()
        run = context["dag_run"]
        skip = missed_slot(run.run_type, run.run_after, run.start_date or run.run_after)
        if skip:
            log.info("%s", skip)
            return False
        ti = context["ti"]
        return restart_gracefully(
            get_settings(),
            QUERIES,
            lambda states: ti.get_dr_count(dag_id=STREAMING_DAG, states=states),
            slot=run.run_after,
        )

    stop_driver_gracefully() >> TriggerDagRunOperator(
        task_id="start_streaming", trigger_dag_id=STREAMING_DAG, wait_for_completion=False
    )


streaming_restart()
