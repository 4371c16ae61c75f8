"""
### Provision Kafka topics and the event schema

Creates the input topic, its dead-letter topic and one output topic per analytic, with the
partitions, replication and retention from `config/platform.toml`.  Idempotent: existing
topics are left alone.  **Drift** (a topic with fewer partitions or another replication
factor than configured) fails the task with a message that says what differs and how to fix it.

Then registers the event schema (`include/schemas/ecommerce_event.avsc`) in the schema
registry under `<input topic>-value`, with `[registry] compatibility` as its rule: every
version of the file newer than the newest the registry holds, oldest first (a fresh registry
gets versions 1..N under the file's numbers); a version the rule refuses fails the task with
what breaks (nothing is registered, no Avro producer can use it).
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

    @task
    def register_event_schema() -> dict[str, int]:
        from include.registry import register_history, subject_versions
        from include.settings import get_settings

        settings = get_settings()
        current = register_history(settings)
        held = subject_versions(settings)
        print(
            f"event schema: version {current.version} (id {current.schema_id}) of "
            f"{current.subject}; versions held: "
            + ", ".join(f"{r.version} (id {r.schema_id})" for r in held)
        )
        return {"version": current.version, "schema_id": current.schema_id}

    create_or_verify_topics() >> register_event_schema()


provision_topics()
