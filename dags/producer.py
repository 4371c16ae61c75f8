"""
### Event producer

Runs the e-commerce event generator as a long-running task: events keyed by `user_id`
into the input topic, asynchronous sends with `acks=all`, idempotence and compression.

Params: `rate` (events/s, > 0), `duration_seconds` (0 = until the task is stopped),
`seed` (reproducible event stream), `event_format`: `platform` (visits: a user arrives,
browses a few minutes, maybe buys, and leaves), `avro` (the same visits as Avro records of
the event schema `provision_topics` registered, in the Confluent wire format; a schema the
registry does not hold fails the run before anything is sent) or `tutorial` (the Kafka + Spark
tutorial's own events: zone-less timestamps read in `[events] naive_timezone`, quantity 0
on views and removals, float revenue, snappy batches); left empty, each comes from
`[producer]` in `config/platform.toml`.  A bad value fails the run before anything is sent.
Marking the task failed or success in the UI stops the producer; it flushes what is in
flight and logs how many events were sent, acknowledged and failed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from include.dag_defaults import START_DATE, default_args
from include.operators import ProducerOperator
from include.settings.base import EVENT_FORMATS


@dag(
    dag_id="producer",
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    # A failed producer resumes after 30 s, not Airflow's default 5 minutes: no events
    # are produced while it waits.
    default_args=default_args(retry_delay=timedelta(seconds=30)),
    tags=["ecommerce", "kafka", "producer"],
    params={
        # Empty = the value of [producer] in config/platform.toml.
        "rate": Param(
            None, type=["null", "number"], exclusiveMinimum=0, description="events per second (> 0)"
        ),
        "duration_seconds": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="0 = run until the task is stopped",
        ),
        "seed": Param(
            None, type=["null", "integer"], description="random seed of the event stream"
        ),
        "event_format": Param(
            None,
            type=["null", "string"],
            enum=[None, *EVENT_FORMATS],
            description="platform (visits, JSON), avro (visits, Avro) or tutorial (its events)",
        ),
    },
    # Params reach the operator as numbers (or None), not as rendered strings.
    render_template_as_native_obj=True,
)
def producer():
    ProducerOperator(
        task_id="produce_events",
        rate="{{ params.rate }}",
        duration_seconds="{{ params.duration_seconds }}",
        seed="{{ params.seed }}",
        event_format="{{ params.event_format }}",
        execution_timeout=None,
    )


producer()
