"""Operators the DAGs use; everything that touches disk, settings or clients is in execute().

The producer and Spark operators run for as long as their job does.  Airflow stops a
running task by calling `on_kill()` and, five seconds later, killing the process: so
`on_kill()` must make the job wind down quickly and cleanly, which is what each one does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import psutil
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.exceptions import AirflowFailException

from include.runtime.spark_launch import (
    STREAMING_APP,
    connector_jars,
    launch_conf,
    launch_environment,
    ui_conf,
)
from include.settings import get_settings

GRACEFUL_STOP_SECONDS = 4.0  # inside Airflow's 5 s before it kills the task process


class ProducerOperator(BaseOperator):
    """Runs the event producer until `duration_seconds` pass or the task is stopped."""

    template_fields: Sequence[str] = ("rate", "duration_seconds", "seed", "event_format")

    def __init__(
        self,
        *,
        rate: Any,
        duration_seconds: Any,
        seed: Any,
        event_format: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rate = rate
        self.duration_seconds = duration_seconds
        self.seed = seed
        self.event_format = event_format
        self._stop = threading.Event()

    def execute(self, context: Any) -> dict[str, int]:
        """Produce with the task's parameters (None: the settings' value); returns the counts sent
        and acknowledged.  A bad parameter fails the task without retry; an event the broker
        did not acknowledge fails it with RuntimeError."""
        from include.metrics import producer_totals_path
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
                event_format=str(self.event_format or defaults.event_format),
                naive_timezone=settings.events.naive_timezone,
            ).validate()
        except (ValueError, TypeError) as exc:
            # Retrying cannot fix a bad parameter: fail now, with the reason.
            raise AirflowFailException(str(exc)) from exc
        encoder = None
        if params.event_format == "avro":
            from include.registry import AvroEncoder, SchemaNotRegistered

            try:
                # Only a schema the registry holds: refused here, nothing has been sent.  A
                # registry that does not answer raises RegistryError: the task retries.
                encoder = AvroEncoder(settings)
            except SchemaNotRegistered as exc:
                raise AirflowFailException(f"cannot produce Avro events: {exc}") from exc
            registered = encoder.registered
            self.log.info(
                "writing Avro records of schema version %d (id %d) of %s",
                registered.version,
                registered.schema_id,
                registered.subject,
            )
        stats = run_producer(
            settings.bootstrap_servers,
            settings.kafka.input_topic,
            params,
            stop=self._stop,
            value_encoder=encoder,
            totals=producer_totals_path(settings),
        )
        if stats.failed:
            raise RuntimeError(f"{stats.failed} events were not acknowledged: {stats.last_error}")
        return {"sent": stats.sent, "acknowledged": stats.acknowledged}

    def on_kill(self) -> None:
        """Ask the producer to stop: it flushes what is in flight and returns."""
        self.log.info("stop requested: the producer flushes what is in flight and exits")
        self._stop.set()


class SparkAppOperator(SparkSubmitOperator):
    """spark-submit of one of the project's Spark applications, launched as
    `include.runtime.spark_launch` launches them: the connector jars from the jar cache,
    its environment and its confs.

    The jar list, driver memory and PYTHONPATH are resolved when the task runs, not when the
    DAG file is parsed: the DAG processor must not touch the jar cache.
    """

    def execute(self, context: Any) -> None:
        """Resolve the jars, driver memory, environment and confs now, then spark-submit."""
        settings = get_settings()
        jars = connector_jars(settings)
        self.jars = ",".join(str(j) for j in jars)
        self._driver_memory = settings.spark.driver_memory
        self.env_vars = {**(self.env_vars or {}), **launch_environment(settings)}
        self.conf = {**(self.conf or {}), **launch_conf(settings), **ui_conf(settings)}
        self.log.info("submitting %s with %d connector jars", self.application, len(jars))
        super().execute(context)


class StreamingJobOperator(SparkAppOperator):
    """The streaming application (spark_jobs/streaming_app.py) computing the given outputs
    (comma-separated names of ``include.analytics.OUTPUTS``)."""

    def __init__(
        self, *, outputs: str, application_args: list[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(
            application=str(STREAMING_APP),
            application_args=["--outputs", outputs, *(application_args or [])],
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
                    if str(STREAMING_APP) in " ".join(p.cmdline())
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


# The plugin (plugins/ecom_ui.py) serves the quality pages under this prefix.
UI_PREFIX = "/ecom"


class QualityReportLink(BaseOperatorLink):
    """The "Quality report" button on a quality task: this run's results in the plugin."""

    name = "Quality report"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        """The plugin's quality page of the task's DAG run."""
        query = urlencode({"dag_id": ti_key.dag_id, "run_id": ti_key.run_id})
        return f"{UI_PREFIX}/quality/run?{query}"


class ReconciliationLink(BaseOperatorLink):
    """The "Reconciliation" button on the backfill task: its run's report in the plugin."""

    name = "Reconciliation"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        """The plugin's reconciliation page of the task's DAG run."""
        query = urlencode({"dag_id": ti_key.dag_id, "run_id": ti_key.run_id})
        return f"{UI_PREFIX}/backfill/run?{query}"


class BackfillOperator(SparkAppOperator):
    """The backfill application (spark_jobs/backfill_app.py) for one interval; its
    Reconciliation button opens the run's report."""

    operator_extra_links = (ReconciliationLink(),)


class DataQualityOperator(BaseOperator):
    """Runs the quality checks of include/quality/ on the sink tables.

    Params (from the DAG run): ``full`` checks every row instead of the rows committed since
    the last check; ``tables`` limits the run to some tables.  Fails (without retry: the
    data will not get better by asking again) when a check of severity ``fail`` fails;
    warnings are logged and reported.  Skips while no table has rows yet.
    """

    operator_extra_links = (QualityReportLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        """Run the checks, log every table's and check's outcome; returns the quality run's id and
        status."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.quality.report import DataQualityError, raise_for_failures
        from include.quality.run import NoDataYet, run_quality
        from include.quality.source import KafkaInput
        from include.registry import AvroDecoder

        settings = get_settings()
        full, tables = quality_params(context["params"])
        ti = context["ti"]
        source = KafkaInput(
            settings.bootstrap_servers, settings.kafka.input_topic, avro=AvroDecoder(settings)
        )
        try:
            report = run_quality(
                settings,
                source,
                full=full,
                tables=tables,
                airflow={
                    "dag_id": ti.dag_id,
                    "run_id": ti.run_id,
                    "task_id": ti.task_id,
                    "try_number": ti.try_number,
                },
            )
        except NoDataYet as exc:
            raise AirflowSkipException(str(exc)) from exc
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc

        for table in report.tables:
            self.log.info(
                "%s: %s (%d of %d rows checked)%s",
                table.table,
                table.status.upper(),
                table.rows_checked,
                table.rows_in_table,
                f"; {table.note}" if table.note else "",
            )
            for check in table.checks:
                level = {"pass": self.log.info, "warn": self.log.warning}.get(
                    check.status, self.log.error
                )
                level("  %-4s [%s] %s", check.status.upper(), check.severity, check.describe())
        self.log.info("Data quality report (GX Data Docs): %s", report.report_path)
        self.log.info("Results in the Airflow UI: Quality report button, or %s/quality", UI_PREFIX)
        try:
            raise_for_failures(report)
        except DataQualityError as exc:
            raise AirflowFailException(str(exc)) from exc
        return {"run_id": report.run_id, "status": report.status}


def quality_params(params: Any) -> tuple[bool, list[str] | None]:
    """``full`` and ``tables`` from the run's params, or a fail-fast error saying what to fix."""
    from include.quality.checks import table_suites

    full = params.get("full", False)
    if not isinstance(full, bool):
        raise AirflowFailException(
            f"param 'full' must be true or false, got {full!r}: "
            'trigger with {"full": true} to check every row'
        )
    tables = params.get("tables") or []
    known = list(table_suites(get_settings()))
    if not isinstance(tables, list) or any(t not in known for t in tables):
        raise AirflowFailException(
            f"param 'tables' must be a list of table names from {', '.join(known)}; got {tables!r}"
        )
    return full, tables or None
