"""
### Event producer

Runs the e-commerce event generator as a long-running task: JSON events keyed by `user_id`
into the input topic, asynchronous sends with `acks=all`, idempotence and compression.

Params: `rate` (events/s, > 0), `duration_seconds` (0 = until the task is stopped),
`seed` (reproducible event stream).  A bad value fails the run before anything is sent.
Marking the task failed or success in the UI stops the producer; it flushes what is in
flight and logs how many events were sent, acknowledged and failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

DEFAULT_ARGS = {"owner": "data-platform", "retries": 1, "retry_delay": timedelta(seconds=30)}


@dag(
    dag_id="producer",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ecommerce", "kafka", "producer"],
    params={
        "rate": Param(50, type="number", exclusiveMinimum=0, description="events per second"),
        "duration_seconds": Param(
            0, type="number", minimum=0, description="0 = run until the task is stopped"
        ),
        "seed": Param(42, type="integer", description="random seed of the event stream"),
    },
)
def producer():
    @task(execution_timeout=None)
    def produce_events(params: dict | None = None) -> dict[str, int]:
        from airflow.sdk.exceptions import AirflowFailException

        from include.kafka_client import bootstrap_from_connection
        from include.producer import ProducerParams, run_producer
        from include.settings import get_settings

        settings = get_settings()
        try:
            run_params = ProducerParams(
                rate=float(params["rate"]),
                duration_seconds=float(params["duration_seconds"]),
                seed=int(params["seed"]),
                users=settings.producer.users,
                products=settings.producer.products,
            ).validate()
        except (ValueError, TypeError) as exc:
            # Retrying cannot fix a bad parameter: fail now, with the reason.
            raise AirflowFailException(str(exc)) from exc
        stats = run_producer(
            bootstrap_from_connection("kafka_default"), settings.kafka.input_topic, run_params
        )
        if stats.failed:
            raise RuntimeError(f"{stats.failed} events were not acknowledged: {stats.last_error}")
        return {"sent": stats.sent, "acknowledged": stats.acknowledged}

    produce_events()


producer()
