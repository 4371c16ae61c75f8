"""
### Streaming supervisor

Every `supervisor.interval_seconds` (two minutes by default), judges each streaming query
from what it leaves behind (its checkpoint, its driver lease, its progress records and
Kafka's end offsets) and acts:

* **running**: a live driver, lag under the threshold; nothing to do.
* **lagging**: more than `supervisor.lag_warning_records` behind the topic's end; a warning
  here and in the health record.
* **stalled**: no commit for `supervisor.stall_seconds` while input waits, or a frozen
  driver (no lease heartbeat); graceful stop (a hard kill after
  `supervisor.stop_timeout_seconds`, logged as such), then a restart.
* **dead**: no driver holds the checkpoints; a restart (a new `streaming` run).
* **not-started**: no driver because the `streaming` DAG has never run; nothing to do.
* **starting**: no driver yet, but a `streaming` run is active (restarted only if that run
  ends without one), or the scheduled restart (`streaming_restart`) is replacing the driver
  (left to it).
* a **zombie**, a driver running while no `streaming` run is active (Airflow marked its task
  failed but the process lives on), is stopped before a new run is started.

When Kafka does not answer (a broker restart), the lag is unknown for that round ("lag
unknown" in the sentences and the health record): dead and frozen drivers are still judged
and restarted, nothing is called lagging or stalled for its lag.  A failed round is retried
after one interval, not Airflow's usual 5 minutes.

Beside that, it announces every sink table with new commits as an Airflow Asset event,
which triggers the `data_quality` DAG.

Every verdict is one plain sentence in the task log, e.g. "revenue_by_category stalled: no
commit for 6 min, lag 48,210; restarting".  The health view reads
`<state_dir>/metrics/health.json`.  The `streaming` task has no Airflow retries: this DAG is
the one thing that restarts it, so a crash never gets two restarts.  It never starts a
streaming DAG that has not run yet; to stop streaming on purpose, pause this DAG first.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

from include.assets import SINK_UPDATES, sink_asset
from include.dag_defaults import RESTART_DAG, START_DATE, STREAMING_DAG, default_args
from include.settings import get_settings

log = logging.getLogger(__name__)

# Reads config/platform.toml only (no connection): allowed at parse time.
INTERVAL = timedelta(seconds=get_settings().supervisor.interval_seconds)


@dag(
    dag_id="supervisor",
    doc_md=__doc__,
    tags=["ecommerce", "streaming", "operations"],
    # A failed round retries after one interval, not Airflow's 5 minutes: with one run at
    # a time, the retry delay is time in which nobody watches the drivers.
    default_args=default_args(retry_delay=INTERVAL),
    schedule=INTERVAL,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
)
def supervisor() -> None:
    @task.short_circuit
    def assess_and_stop_stalled() -> bool:
        """True (go on to the restart) when a new streaming run is needed."""
        from include.analytics import QUERIES
        from include.runtime.procs import stop_on_sigterm
        from include.streaming.supervisor import supervise_once

        ti = get_current_context()["ti"]
        settings = get_settings()
        stop = stop_on_sigterm()
        return supervise_once(
            settings,
            QUERIES,
            settings.bootstrap_servers,
            lambda states: ti.get_dr_count(dag_id=STREAMING_DAG, states=states),
            scheduled_restart=ti.get_dr_count(dag_id=RESTART_DAG, states=["running"]) > 0,
            stopping=stop.is_set,
        )

    restart = TriggerDagRunOperator(
        task_id="restart_streaming",
        trigger_dag_id=STREAMING_DAG,
        wait_for_completion=False,
    )
    assess_and_stop_stalled() >> restart

    @task(outlets=[SINK_UPDATES])
    def announce_table_updates(*, outlet_events=None) -> dict[str, int]:
        """An Asset event per sink table with new commits: the quality checks follow."""
        from include.assets import changed_tables

        changed = changed_tables(get_settings())
        for table, version in changed.items():
            outlet_events[SINK_UPDATES].add(sink_asset(table), extra={"version": version})
        log.info(
            "tables with new commits: %s",
            ", ".join(f"{t} (version {v})" for t, v in changed.items()) or "none",
        )
        return changed

    announce_table_updates()


supervisor()
