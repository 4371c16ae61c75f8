"""The SparkSession of the Spark applications (streaming and backfill), and the streaming
app's Kafka source.

:func:`session_conf` is every Spark setting the applications depend on, whoever launched them
(spark-submit from the streaming DAG, the tests, the benchmarks); :func:`build_session` also
fills in master, memory and jars when plain ``python`` started the driver.
"""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession

from include.kafka.security import spark_kafka_options
from include.runtime.spark_history import STREAMING_ROLE, event_log_conf, record_driver, script_role
from include.runtime.spark_launch import SPARK_UMASK_CONF, connector_jars, driver_java_options
from include.settings import Settings
from spark_jobs.avro import register_avro_udf

APP_NAME = "ecommerce-streaming"
STATE_STORE_PROVIDERS = {
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
}

# What a micro-batch costs when it carries a few rows: mostly fixed work per batch and per
# task, not rows (profiled with Java Flight Recorder, see BENCHMARKS.md).
PER_BATCH_COST_CONF = {
    # Spark keeps 100 compiled classes; six queries and Delta's own plans need more, so at
    # 100 batches kept compiling their code again (janino: 22% of the JVM's samples, 2% now).
    "spark.sql.codegen.cache.maxEntries": "2000",
    # Delta rebuilds a table's state in 50 tasks by default, each shipping a Hadoop
    # configuration and generating its projections: our tables' logs are small.
    "spark.databricks.delta.snapshotPartitions": "2",
}


def session_conf(settings: Settings) -> dict[str, str]:
    """Spark settings the application depends on, whatever launched it."""
    at_once = settings.spark.emit == "at_once"
    return {
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        # The Spark UI has no login: nobody who can reach it may kill the streaming stages.
        "spark.ui.killEnabled": "false",
        # Tables and checkpoints as private as the rest of the state dir.
        **SPARK_UMASK_CONF,
        # Plans in the UI and logs show data source options: hide URLs (Spark's default) and
        # a mutual-TLS client key given as text (include.kafka.security); the SASL password
        # is hidden by spark.redaction.regex already ("password" in the JAAS line).
        "spark.sql.redaction.options.regex": r"(?i)url|ssl\.keystore\.key",
        "spark.sql.session.timeZone": "UTC",
        # Every branch of the one query reads the same records, but Spark pushes each
        # branch's filters below its watermark (click_to_purchase's sides see only views or
        # purchases, and no control record): the query's watermark is the largest of them,
        # the one over every event, as each analytic's was in its own query.
        "spark.sql.streaming.multipleWatermarkPolicy": "max",
        # By default state lives off-heap in RocksDB; the changelog makes each commit a
        # small delta instead of a full snapshot upload.
        "spark.sql.streaming.stateStore.providerClass": STATE_STORE_PROVIDERS[
            settings.spark.state_store
        ],
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # Checkpoint retention: the offsets, commits and state versions of this many
        # batches are kept (older ones are cleaned by Spark's maintenance).
        "spark.sql.streaming.minBatchesToRetain": str(settings.spark.min_batches_to_retain),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        **PER_BATCH_COST_CONF,
        # Its history outlives it: the event log the Spark History Server replays, also
        # after a kill -9 (include.runtime.spark_history).
        **event_log_conf(settings),
        **({"spark.sql.streaming.pollingDelay": AT_ONCE_POLL} if at_once else {}),
        **settings.spark.conf,
    }


def app_name(role: str) -> str:
    """The application's name, by the script the driver runs: the streaming app is
    ``ecommerce-streaming``, the backfill ``ecommerce-backfill`` (so the History Server's list
    tells them apart)."""
    return APP_NAME if role == STREAMING_ROLE else f"ecommerce-{role.removesuffix('_app')}"


def build_session(settings: Settings) -> SparkSession:
    """The one SparkSession of a driver, configured by :func:`session_conf`; the driver's
    application id noted for the History Server's links (include.runtime.spark_history)."""
    # Spark refuses to start when the event log's directory is missing.
    settings.paths.spark_events_dir.mkdir(parents=True, exist_ok=True)
    role = script_role()
    builder = SparkSession.builder.appName(app_name(role))
    for key, value in session_conf(settings).items():
        builder = builder.config(key, value)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        # Started by plain `python`, not spark-submit: nothing has chosen master, memory
        # or jars yet, so take them from the settings and the jar cache.
        builder = builder.master(settings.spark.master).config(
            "spark.driver.memory", settings.spark.driver_memory
        )
        java_options = driver_java_options(settings)
        if java_options:
            builder = builder.config("spark.driver.extraJavaOptions", java_options)
        jars = connector_jars(settings)
        builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    record_driver(settings, spark.sparkContext.applicationId, app_name(role), role)
    # The Avro decoder parse_events calls for Avro records (jvm/avro-json, on spark.jars).
    register_avro_udf(spark)
    return spark


# With emit = "at_once" the query loops without an interval: how long it waits before it
# looks at Kafka again when there is nothing to run (Spark's default, 10 ms, would ask the
# broker for its offsets a hundred times a second).
AT_ONCE_POLL = "500ms"


def trigger_options(settings: Settings, trigger_seconds: float) -> dict[str, str]:
    """The ``DataStreamWriter.trigger`` arguments for ``[spark] emit``.

    "interval": a batch every `trigger_seconds`; the rows a batch makes final (the
    watermark it computes applies from the next batch on) leave with the next one.
    "at_once": no interval; Spark runs the batch that emits them as soon as the one that
    made them final ends, and the Kafka source holds batches with input back until
    ``min_offsets_per_trigger`` records wait or `trigger_seconds` passed
    (:func:`read_events`)."""
    if settings.spark.emit == "at_once":
        return {"processingTime": "0 seconds"}
    return {"processingTime": f"{trigger_seconds:g} seconds"}


def read_events(
    spark: SparkSession,
    settings: Settings,
    starting_offsets: str,
    max_offsets: int,
    trigger_seconds: float | None = None,
) -> DataFrame:
    """The input topic and the idle rule's control topic as a stream of Kafka records.

    failOnDataLoss keeps its default (true): offsets that vanished (retention, a recreated
    topic) stop the query loudly instead of skipping events silently.  With ``[spark] emit =
    "at_once"`` a batch with input waits for ``min_offsets_per_trigger`` records or
    `trigger_seconds` (default ``[spark] trigger_seconds``), :func:`trigger_options`.
    """
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings))
        # The control topic's records move event time while the input is silent
        # (include.streaming.idle_close); validation tells them from events.
        .option("subscribe", f"{settings.kafka.input_topic},{settings.kafka.control_topic}")
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", str(max_offsets))
    )
    if settings.spark.emit == "at_once":
        delay = settings.spark.trigger_seconds if trigger_seconds is None else trigger_seconds
        reader = reader.option(
            "minOffsetsPerTrigger", str(min(settings.spark.min_offsets_per_trigger, max_offsets))
        ).option("maxTriggerDelay", f"{max(1, round(delay * 1000))}ms")
    return reader.load()
