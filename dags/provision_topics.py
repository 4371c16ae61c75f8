"""
### Provision Kafka topics

Creates the input topic, its dead-letter topic and one output topic per analytic, with the
partitions, replication and retention from `config/platform.toml`.  Idempotent: existing
topics are left alone.  **Drift** (a topic with fewer partitions or another replication
factor than configured) fails the task with a message that says what differs and how to fix it.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from include.dag_defaults import START_DATE, default_args


@dag(
    dag_id="provision_topics",
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    # `make up` waits up to 5 minutes for this run, right after starting the broker: two
    # retries 20 s apart fit in that wait; Airflow's default 5-minute delay would not.
    default_args=default_args(retries=2, retry_delay=timedelta(seconds=20)),
    tags=["ecommerce", "kafka", "setup"],
)
def provision_topics():
    @task
    def create_or_verify_topics() -> dict[str, str]:
        from include.kafka.topics import provision
        from include.settings import get_settings

        return provision(get_settings())

    create_or_verify_topics()


provision_topics()
