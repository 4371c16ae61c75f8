"""The streaming application in the alternative designs benchmarks/designs.py compares.

Run with spark-submit like spark_jobs/streaming_app.py.  ``--design``:

* ``independent``: what the platform runs: every query reads the input topic itself and
  parses it (``--sessions`` picks the user_sessions implementation).
* ``parse_once``: one query reads Kafka, parses, validates and de-duplicates, and appends
  the events to a Delta table exactly once; every analytic streams from that table.
* ``one_query``: every analytic and the dead letters as branches of one streaming query
  (one offset log, one plan, one sink call per batch; the sink splits the batch by table
  and writes all topics in one Kafka job).  Spark still reads and parses the topic once
  per branch and keeps each branch's state apart, and the branches share one watermark
  (the lowest), so this measures the cost of a batch, not the platform's exact semantics.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from benchmarks.pandas_sessions import user_sessions_with_state
from benchmarks.six_queries import QUERY_STARTERS, analytic_sink, start_query
from include.analytics import ANALYTIC_NAMES, BY_NAME, DEAD_LETTERS
from include.progress import progress_path
from include.settings import Settings, get_settings
from spark_jobs import transforms
from spark_jobs.lifecycle import supervise
from spark_jobs.listener import ProgressRecorder
from spark_jobs.session import build_session, read_events
from spark_jobs.sinks import checkpoint_query_id, job_name
from spark_jobs.validation import dead_letters, parse_events, valid_events

EVENTS_QUERY = "events"


def with_pandas_sessions() -> None:
    """user_sessions by transformWithStateInPandas instead of session windows: an analytic's
    transform is the function of its name in spark_jobs.transforms (transform_of)."""
    transforms.user_sessions = user_sessions_with_state


def write_events_once(table: Path, checkpoint: Path):
    """foreachBatch function: append a batch to the events table, skipping a replay."""

    def write(batch: DataFrame, batch_id: int) -> None:
        if batch.isEmpty():
            return
        app_id = f"{EVENTS_QUERY}-{checkpoint_query_id(checkpoint)}"
        (
            batch.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", str(batch_id))
            .save(str(table))
        )

    return write


def parse_once(
    spark: SparkSession, parsed: DataFrame, settings: Settings, args
) -> list[StreamingQuery]:
    table = settings.table_path(EVENTS_QUERY)
    checkpoint = settings.checkpoint_path(EVENTS_QUERY)
    valid = valid_events(parsed)
    if not (table / "_delta_log").exists():
        # A Delta stream needs its source table to exist, schema included.
        spark.createDataFrame([], valid.schema).write.format("delta").save(str(table))
    deduplicated = transforms.deduplicate(
        transforms.with_watermark(valid, settings.analytics.watermark_seconds)
    )
    queries = [
        deduplicated.writeStream.queryName(EVENTS_QUERY)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .foreachBatch(write_events_once(table, checkpoint))
        .start(),
        QUERY_STARTERS[DEAD_LETTERS.name](parsed, settings, args.trigger_seconds),
    ]
    events = spark.readStream.format("delta").load(str(table))
    watermarked = events.withWatermark(
        "event_time", f"{settings.analytics.watermark_seconds} seconds"
    )
    for name in args.queries:
        analytic = BY_NAME[name]
        sink = analytic_sink(analytic, settings)
        # The events are de-duplicated already; a transform that de-duplicates itself finds
        # nothing left to drop.
        result = transforms.transform_of(analytic)(watermarked, settings.analytics)
        queries.append(start_query(result, name, sink, args.trigger_seconds))
    return queries


ONE_QUERY = "analytics"


def one_query(
    spark: SparkSession, parsed: DataFrame, settings: Settings, args
) -> list[StreamingQuery]:
    """Every analytic and the dead letters as branches of one query: one offset and commit
    log, one plan and one sink call per batch; the sink splits the batch by table."""
    valid = transforms.with_watermark(valid_events(parsed), settings.analytics.watermark_seconds)
    branches: dict[str, DataFrame] = {}
    for name in args.queries:
        analytic = BY_NAME[name]
        rows = transforms.analytic_rows(analytic, valid, settings.analytics)
        branches[name] = rows.select(
            F.lit(settings.output_topic(name)).alias("topic"),
            *transforms.kafka_key_value(rows, analytic.keys),
            F.struct(*analytic.columns).alias(name),
        )
    dead = dead_letters(parsed, max_raw_bytes=settings.events.max_event_bytes)
    branches[DEAD_LETTERS.name] = dead.select(
        F.lit(settings.kafka.dead_letter_topic).alias("topic"),
        "key",
        "value",
        F.struct(*DEAD_LETTERS.columns).alias(DEAD_LETTERS.name),
    )
    types = {name: frame.schema[name].dataType for name, frame in branches.items()}
    names = list(branches)
    union = None
    for name, frame in branches.items():
        wide = frame.select(
            "topic",
            "key",
            "value",
            *[
                F.col(other) if other == name else F.lit(None).cast(types[other]).alias(other)
                for other in names
            ],
        )
        union = wide if union is None else union.union(wide)
    checkpoint = settings.checkpoint_path(ONE_QUERY)
    kafka_options = settings.spark_kafka_options()

    def write(batch: DataFrame, batch_id: int) -> None:
        batch.persist()
        try:
            with job_name(batch, "tables with rows"):
                present = [
                    name
                    for name, row in zip(
                        names,
                        batch.select(
                            *[F.max(F.col(n).isNotNull().cast("int")).alias(n) for n in names]
                        ).first(),
                        strict=True,
                    )
                    if row
                ]
            if not present:
                return
            query_id = checkpoint_query_id(checkpoint)
            for name in present:
                with job_name(batch, f"Delta write {name}"):
                    (
                        batch.filter(F.col(name).isNotNull())
                        .select(f"{name}.*")
                        .write.format("delta")
                        .mode("append")
                        .option("txnAppId", f"{name}-{query_id}")
                        .option("txnVersion", str(batch_id))
                        .save(str(settings.table_path(name)))
                    )
            with job_name(batch, "Kafka write"):
                batch.select("topic", "key", "value").write.format("kafka").options(
                    **kafka_options
                ).save()
        finally:
            batch.unpersist()

    query = (
        union.writeStream.queryName(ONE_QUERY)
        .outputMode("append")
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .foreachBatch(write)
        .start()
    )
    return [query]


def main() -> int:
    parser = argparse.ArgumentParser(prog="design_app")
    parser.add_argument(
        "--design", choices=["independent", "parse_once", "one_query"], required=True
    )
    parser.add_argument(
        "--sessions", choices=["session_window", "transform_with_state"], default="session_window"
    )
    parser.add_argument("--queries", default=",".join(ANALYTIC_NAMES))
    parser.add_argument("--trigger-seconds", type=int, default=1)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=50_000)
    parser.add_argument("--stop-file", type=Path, required=True)
    args = parser.parse_args()
    args.queries = [q for q in args.queries.split(",") if q]
    settings = get_settings()
    if args.sessions == "transform_with_state":
        with_pandas_sessions()

    spark = build_session(settings)
    spark.streams.addListener(
        ProgressRecorder(
            progress_path(settings.metrics_dir),
            settings.maintenance.jsonl_max_bytes,
            settings.maintenance.jsonl_keep_files,
        )
    )
    parsed = parse_events(
        read_events(spark, settings, "earliest", args.max_offsets_per_trigger),
        settings.events,
    )
    if args.design == "parse_once":
        queries = parse_once(spark, parsed, settings, args)
    elif args.design == "one_query":
        queries = one_query(spark, parsed, settings, args)
    else:
        queries = [
            QUERY_STARTERS[name](parsed, settings, args.trigger_seconds) for name in args.queries
        ]
    try:
        return supervise(queries, args.stop_file, None, threading.Event())
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
