"""
### Table and file maintenance

On `maintenance.schedule` (hourly by default), keeps a long run's tables and files within
the bounds of `[maintenance]` in `config/platform.toml`, while the stream writes:

* **Delta tables** (sink and backfill): compacts the micro-batches' small files into files
  of `target_file_mb` (a commit that changes no row, so the streaming appends and the
  incremental quality checks go on undisturbed), deletes the replaced files once older
  than `vacuum_retention_hours`, writes a log checkpoint and deletes log entries older
  than it and than `log_retention_hours`.
* **Files**: service logs beyond `service_log_max_bytes` are rotated; backfill reports,
  stored quality results and their report pages, and Airflow task logs older than
  `keep_days` are deleted.
* **Spark event logs** (`<state>/spark-events`, what the Spark History Server shows): logs
  not written to for `[spark_history] keep_days` are deleted, never a running driver's.
* **Airflow's metadata database**: rows older than `keep_days` (`airflow db clean`).

Each table and folder gets one plain sentence in the task log.  Safe to trigger at any time.
"""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, dag, task

from include.dag_defaults import START_DATE, default_args
from include.settings import get_settings


@dag(
    dag_id="table_maintenance",
    doc_md=__doc__,
    tags=["ecommerce", "operations"],
    default_args=default_args(),
    schedule=CronTriggerTimetable(get_settings().maintenance.schedule, timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
)
def table_maintenance() -> None:
    @task
    def care_for_tables() -> list[str]:
        """Compact, vacuum, checkpoint and clean the log of every Delta table."""
        from include.maintenance.tables import care_for_tables

        return [done.sentence() for done in care_for_tables(get_settings())]

    @task
    def care_for_files() -> str:
        """Rotate service logs; delete reports and task logs past their retention."""
        from include.maintenance.files import care_for_files

        return care_for_files(get_settings()).sentence()

    @task
    def prune_spark_event_logs() -> int:
        """Delete the Spark event logs past their retention, not a running driver's."""
        from include.maintenance.files import prune_event_logs

        return prune_event_logs(get_settings())

    @task
    def clean_airflow_db() -> None:
        """Delete Airflow's metadata rows past their retention."""
        from include.maintenance.files import clean_airflow_db

        clean_airflow_db(get_settings())

    care_for_tables()
    care_for_files()
    prune_spark_event_logs()
    clean_airflow_db()


table_maintenance()
