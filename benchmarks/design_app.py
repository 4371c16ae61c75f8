"""The streaming application in the alternative designs benchmarks/designs.py compares.

Run with spark-submit like spark_jobs/streaming_app.py.  ``--design``:

* ``independent``: the six-query design the platform ran before its one query: every query
  reads the input topic itself and parses it (``--sessions`` picks the user_sessions
  implementation).
* ``parse_once``: one query reads Kafka, parses, validates and de-duplicates, and appends
  the events to a Delta table exactly once; every analytic streams from that table.
* ``tutorial``: the peer row, the tutorial's own queries in update mode writing to Kafka
  (benchmarks/tutorial_queries.py); ``--queries`` does not apply.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from benchmarks import tutorial_queries
from benchmarks.pandas_sessions import user_sessions_with_state
from benchmarks.six_queries import QUERY_STARTERS, analytic_sink, start_query
from include.analytics import ANALYTIC_NAMES, BY_NAME, DEAD_LETTERS
from include.settings import Settings, get_settings
from include.streaming.progress import progress_path
from spark_jobs import transforms
from spark_jobs.lifecycle import supervise
from spark_jobs.listener import ProgressRecorder
from spark_jobs.session import build_session, read_events
from spark_jobs.sinks import checkpoint_query_id
from spark_jobs.validation import parse_events, valid_events

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
    table = settings.paths.table_path(EVENTS_QUERY)
    checkpoint = settings.paths.checkpoint_path(EVENTS_QUERY)
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="design_app")
    parser.add_argument(
        "--design", choices=["independent", "parse_once", "tutorial"], required=True
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
            progress_path(settings.paths.metrics_dir),
            settings.maintenance.jsonl_max_bytes,
            settings.maintenance.jsonl_keep_files,
        )
    )
    if args.design == "tutorial":
        return run(tutorial_queries.start(spark, settings, args.trigger_seconds), spark, args)
    parsed = parse_events(
        read_events(spark, settings, "earliest", args.max_offsets_per_trigger),
        settings.events,
        settings.registry_url,
    )
    if args.design == "parse_once":
        queries = parse_once(spark, parsed, settings, args)
    else:
        queries = [
            QUERY_STARTERS[name](parsed, settings, args.trigger_seconds) for name in args.queries
        ]
    return run(queries, spark, args)


def run(queries: list[StreamingQuery], spark: SparkSession, args) -> int:
    """Until the stop file appears or a query fails."""
    try:
        return supervise(queries, args.stop_file, None, threading.Event())
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
