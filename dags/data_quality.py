"""Data quality: validate the `revenue_by_category` Delta table every five minutes.

Runs the Great Expectations suite from `include/quality.py` against the committed state
of the table the Spark streaming job writes:

* key columns (`window_start`, `window_end`, `category`) are never null;
* `total_revenue` and `avg_order_value` are >= 0, `purchase_count` >= 1;
* every window is exactly `analytics.revenue_window_seconds` long;
* `(window_start, category)` is unique, and the column set is exactly the expected one.

Outcomes:

* **skipped** -- the table does not exist yet or has fewer than `quality.min_rows` rows;
* **failed** -- at least one check failed; the log names each failing check in plain words;
* **success** -- all checks passed.

Every run rebuilds the Data Docs (path in the task log as "Data quality report: ...",
under `<state_dir>/quality/gx/uncommitted/data_docs/local_site/index.html`) and appends
one JSON line to `<state_dir>/quality/history.jsonl`.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import dag, task

log = logging.getLogger(__name__)


@dag(
    dag_id="data_quality",
    doc_md=__doc__,
    tags=["ecommerce", "quality"],
    default_args={"owner": "data-platform", "retries": 1},
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
)
def data_quality() -> None:
    @task
    def validate_revenue_by_category() -> None:
        # Imported here, not at module level: the scheduler parses this file often and
        # the quality module's dependencies (Great Expectations, deltalake) are slow.
        # airflow.sdk.exceptions, not airflow.exceptions: the latter is a deprecated alias
        # in Airflow 3 that warns on every import.
        from airflow.sdk.exceptions import AirflowSkipException

        from include.quality import NoDataYet, raise_for_failures, run_revenue_checks
        from include.settings import get_settings

        try:
            report = run_revenue_checks(get_settings())
        except NoDataYet as exc:
            raise AirflowSkipException(str(exc)) from exc

        log.info("Checked %d rows of %s", report.row_count, report.table)
        for check in report.checks:
            log.info("%s %s", "PASS" if check.success else "FAIL", check.describe())
        log.info("Data quality report: %s", report.report_path)
        raise_for_failures(report)

    validate_revenue_by_category()


# Main flow: validate_revenue_by_category (skip when no data yet, fail on any failed check).
data_quality()
