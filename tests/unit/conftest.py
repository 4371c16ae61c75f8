"""Shared fixture for the Spark unit tests: one small local SparkSession per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """local[2] with two shuffle partitions: small frames stay fast, shuffles stay real."""
    from pyspark.sql import SparkSession

    from include.runtime.spark_launch import PROJECT_JAR_GROUP, driver_java_options
    from include.settings import Settings

    settings = Settings()
    # Only the project's UDF jar (spark_jobs.avro), not the connectors: no unit test reads
    # Kafka or Delta, and every extra jar slows the session's start.
    own_jars = sorted((settings.jar_dir / PROJECT_JAR_GROUP).glob("*.jar"))
    session = (
        SparkSession.builder.master("local[2]")
        .appName("unit-tests")
        .config("spark.driver.extraJavaOptions", driver_java_options(settings))
        .config("spark.jars", ",".join(str(jar) for jar in own_jars))
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
