"""Operators the DAGs use; everything that touches disk, settings or clients is in execute().

Both operators run for as long as their job does.  Airflow stops a running task by calling
`on_kill()` and, five seconds later, killing the process: so `on_kill()` must make the job
wind down quickly and cleanly, which is what each one here does.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

import psutil
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from include.settings import PROJECT_ROOT, get_settings

APPLICATION = PROJECT_ROOT / "spark_jobs" / "streaming_app.py"
GRACEFUL_STOP_SECONDS = 4.0  # inside Airflow's 5 s before it kills the task process


class ProducerOperator(BaseOperator):
    """Runs the event producer until `duration_seconds` pass or the task is stopped."""

    template_fields: Sequence[str] = ("rate", "duration_seconds", "seed")

    def __init__(
        self,
        *,
        rate: Any,
        duration_seconds: Any,
        seed: Any,
        kafka_conn_id: str = "kafka_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rate = rate
        self.duration_seconds = duration_seconds
        self.seed = seed
        self.kafka_conn_id = kafka_conn_id
        self._stop = threading.Event()

    def execute(self, context: Any) -> dict[str, int]:
        from include.kafka_client import bootstrap_from_connection
        from include.producer import ProducerParams, run_producer

        settings = get_settings()
        defaults = settings.producer
        try:
            params = ProducerParams(
                rate=float(defaults.rate if self.rate is None else self.rate),
                duration_seconds=float(
                    defaults.duration_seconds
                    if self.duration_seconds is None
                    else self.duration_seconds
                ),
                seed=int(defaults.seed if self.seed is None else self.seed),
                users=settings.producer.users,
                products=settings.producer.products,
            ).validate()
        except (ValueError, TypeError) as exc:
            # Retrying cannot fix a bad parameter: fail now, with the reason.
            raise AirflowFailException(str(exc)) from exc
        stats = run_producer(
            bootstrap_from_connection(self.kafka_conn_id),
            settings.kafka.input_topic,
            params,
            stop=self._stop,
        )
        if stats.failed:
            raise RuntimeError(f"{stats.failed} events were not acknowledged: {stats.last_error}")
        return {"sent": stats.sent, "acknowledged": stats.acknowledged}

    def on_kill(self) -> None:
        self.log.info("stop requested: the producer flushes what is in flight and exits")
        self._stop.set()


class SparkAppOperator(SparkSubmitOperator):
    """spark-submit of one of the project's Spark applications, with the connector jars
    from the jar cache.

    The jar list, driver memory and PYTHONPATH are resolved when the task runs, not when the
    DAG file is parsed: the DAG processor must not touch the jar cache.
    """

    def execute(self, context: Any) -> None:
        from include.runtime.services import spark_environment

        settings = get_settings()
        jar_dir = settings.jar_dir / "spark"
        jars = sorted(jar_dir.glob("*.jar"))
        if not jars:
            raise FileNotFoundError(f"no connector jars in {jar_dir}; run `make setup`")
        self.jars = ",".join(str(j) for j in jars)
        self._driver_memory = settings.spark.driver_memory
        self.env_vars = {
            **(self.env_vars or {}),
            **spark_environment(settings),
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        self.conf = {
            **(self.conf or {}),
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
        }
        self.log.info("submitting %s with %d connector jars", self.application, len(jars))
        super().execute(context)


class StreamingJobOperator(SparkAppOperator):
    """The streaming application (spark_jobs/streaming_app.py) with the given queries."""

    def __init__(
        self, *, queries: str, application_args: list[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(
            application=str(APPLICATION),
            application_args=["--queries", queries, *(application_args or [])],
            **kwargs,
        )

    def on_kill(self) -> None:
        """Ask the Python driver to stop at a batch boundary; kill spark-submit if it is slow.

        SIGTERM to the driver makes the application stop each query after its current
        micro-batch and exit 0.  Killing is still safe (sinks are idempotent), only slower
        to recover from.
        """
        submit = getattr(self._hook, "_submit_sp", None) if self._hook else None
        drivers = []
        if submit is not None and submit.poll() is None:
            try:
                drivers = [
                    p
                    for p in psutil.Process(submit.pid).children(recursive=True)
                    if str(APPLICATION) in " ".join(p.cmdline())
                ]
            except psutil.Error:
                drivers = []
        for driver in drivers:
            self.log.info(
                "asking the streaming driver (pid %d) to stop after its batch", driver.pid
            )
            driver.terminate()
        if drivers:
            _, alive = psutil.wait_procs(drivers, timeout=GRACEFUL_STOP_SECONDS)
            if not alive:
                self.log.info("the streaming driver stopped at a batch boundary")
                return
            self.log.warning(
                "the driver did not stop within %.0f s; killing spark-submit", GRACEFUL_STOP_SECONDS
            )
        super().on_kill()
