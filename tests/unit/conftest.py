"""Shared fixture for the Spark unit tests: one small local SparkSession per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """local[2] with two shuffle partitions: small frames stay fast, shuffles stay real."""
    from pyspark.sql import SparkSession

    from include.runtime.spark_launch import driver_java_options
    from include.settings import Settings

    session = (
        SparkSession.builder.master("local[2]")
        .appName("unit-tests")
        .config("spark.driver.extraJavaOptions", driver_java_options(Settings()))
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
