"""
### Scheduled streaming restart

Restarts the streaming driver on `spark.restart_schedule` (cron, UTC; nightly by default,
empty to turn off): a graceful stop at a micro-batch boundary (a hard kill only after
`supervisor.stop_timeout_seconds`, logged as such), then a new `streaming` run.  A restart
picks up new code and config; the driver backs up any checkpoint whose code or config
changed before resuming it.  Nothing running means nothing to restart.  A scheduled run
that starts more than 15 minutes after its slot skips it: that is the past slot Airflow runs
at once when the platform first starts, or one missed while Airflow was down.
"""

from __future__ import annotations

import logging

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

from include.dag_defaults import RESTART_DAG, STREAMING_DAG, default_args
from include.settings import get_settings

log = logging.getLogger(__name__)


@dag(
    dag_id=RESTART_DAG,
    doc_md=__doc__,
    tags=["ecommerce", "streaming", "operations"],
    default_args=default_args(),
    # Reads config/platform.toml only (no connection): allowed at parse time.
    schedule=get_settings().spark.restart_schedule or None,
    # No start date: with one, Airflow runs the latest past slot as soon as the DAG appears
    # (catch-up off still runs one), a restart of the driver the platform has just started.
    # Without one, the first run is the next slot.
    catchup=False,
    max_active_runs=1,
)
def streaming_restart() -> None:
    @task.short_circuit
    def stop_driver_gracefully() -> bool:
        from include.analytics import QUERIES
        from include.supervisor import missed_slot, restart_gracefully

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
        )

    stop_driver_gracefully() >> TriggerDagRunOperator(
        task_id="start_streaming", trigger_dag_id=STREAMING_DAG, wait_for_completion=False
    )


streaming_restart()
