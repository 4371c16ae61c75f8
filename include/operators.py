"""Operators the DAGs use; everything that touches disk or settings happens in execute()."""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from include.settings import PROJECT_ROOT, get_settings


class StreamingJobOperator(SparkSubmitOperator):
    """spark-submit of spark_jobs/streaming_app.py with the connector jars from the jar cache.

    The jar list, driver memory and PYTHONPATH are resolved when the task runs, not when the
    DAG file is parsed: the DAG processor must not touch the jar cache.
    """

    def __init__(
        self, *, queries: str, application_args: list[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(
            application=str(PROJECT_ROOT / "spark_jobs" / "streaming_app.py"),
            application_args=["--queries", queries, *(application_args or [])],
            **kwargs,
        )

    def execute(self, context: Any) -> None:
        settings = get_settings()
        jar_dir = settings.jar_dir / "spark"
        jars = sorted(jar_dir.glob("*.jar"))
        if not jars:
            raise FileNotFoundError(
                f"no connector jars in {jar_dir}; run `make setup` to fetch them"
            )
        self.jars = ",".join(str(j) for j in jars)
        self._driver_memory = settings.spark.driver_memory
        self.env_vars = {**(self.env_vars or {}), "PYTHONPATH": str(PROJECT_ROOT)}
        # The Python interpreter of the venv Airflow runs in, for the driver and workers.
        import sys

        self.conf = {
            **(self.conf or {}),
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
        }
        self.log.info("submitting the streaming application with %d connector jars", len(jars))
        super().execute(context)
