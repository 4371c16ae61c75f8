"""
### Dead-letter alerts

Scheduled on the dead-letter topic itself (Airflow's event-driven scheduling): the Kafka
provider's trigger watches `ecommerce-events-dlq` from the triggerer, and a dead letter
arriving while no alert went out within `alerts.dead_letter_interval_seconds` starts a run.

The run counts every dead letter since the last alert (by offsets, so those held back are
counted too), sends one alert ("120 dead letters in ecommerce-events-dlq since ...") to the
channels of `[alerts]`, then waits the interval and counts again, until an interval passes
without a new one; stopped (`make down`, a scheduler restart), it ends at once and the next
run counts the rest.  With no channel set, the alert is only in this task's log.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from include.alerts.dead_letters import dead_letter_asset
from include.dag_defaults import START_DATE, default_args
from include.settings import get_settings


@dag(
    dag_id="dead_letter_alerts",
    doc_md=__doc__,
    tags=["ecommerce", "operations", "alerts"],
    # A run that hit a broker restart, or a scheduler restart (which kills its task), is
    # retried within a minute, not after Airflow's 5: the dead letters that started it may be
    # the last for a while, and their alert is due within the interval.
    default_args=default_args(retries=4, retry_delay=timedelta(seconds=10)),
    # Reads config/platform.toml only (the topic's name): allowed at parse time.
    schedule=[dead_letter_asset(get_settings())],
    start_date=START_DATE,
    catchup=False,
    # One run counts for all: records arriving meanwhile are in its next count.
    max_active_runs=1,
)
def dead_letter_alerts() -> None:
    @task
    def alert_dead_letters(*, triggering_asset_events=None) -> int:
        """One alert per interval for the dead letters since the last one."""
        from include.alerts.dead_letters import first_seen_ms, report
        from include.runtime.procs import stop_on_sigterm

        settings = get_settings()
        stop = stop_on_sigterm()
        alerts = report(
            settings,
            settings.bootstrap_servers,
            first_seen_ms(triggering_asset_events),
            sleep=stop.wait,
            stopping=stop.is_set,
        )
        return len(alerts)

    alert_dead_letters()


dead_letter_alerts()
