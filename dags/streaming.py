"""
### Streaming analytics

Launches the Spark Structured Streaming application (`spark_jobs/streaming_app.py`) with
SparkSubmitOperator on the `spark_default` connection.  One streaming query parses the input
topic, sends malformed events to the dead-letter topic with a reason, and keeps
`revenue_by_category`, `high_value_users`, `conversion_funnel`, `user_sessions` and
`click_to_purchase` up to date in their Delta tables and output topics, each exactly once.

The task runs as long as the application does.  One driver at a time: two drivers on one
checkpoint would corrupt it, so the task runs in the one-slot pool `streaming` and the
driver takes an exclusive lease on the checkpoint (a second launch is refused, naming the
running driver).  The checkpoint is `checkpoints/pipeline` under the state dir.

If it fails: the supervisor restarts it; the task log says why (a damaged checkpoint, or one
Spark refuses, comes with the command that fixes it).
"""

from __future__ import annotations

from airflow.sdk import dag

from include.analytics import QUERIES
from include.dag_defaults import START_DATE, STREAMING_DAG, default_args
from include.operators import StreamingJobOperator
from include.settings.base import STREAMING_POOL


@dag(
    dag_id=STREAMING_DAG,
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    # No retries: the supervisor DAG restarts a dead or stalled driver (after stopping a
    # frozen one); Airflow retrying as well would race it for the checkpoints.
    default_args=default_args(retries=0),
    tags=["ecommerce", "spark", "streaming"],
)
def streaming():
    StreamingJobOperator(
        task_id="run_streaming_app",
        conn_id="spark_default",
        name="ecommerce-streaming",
        outputs=",".join(QUERIES),
        execution_timeout=None,
        max_active_tis_per_dag=1,
        pool=STREAMING_POOL,
    )


streaming()
