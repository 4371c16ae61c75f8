"""The streaming application in the alternative designs benchmarks/designs.py compares.

Run with spark-submit like spark_jobs/streaming_app.py.  ``--design``:

* ``independent``: what the platform runs: every query reads the input topic itself and
  parses it (``--sessions`` picks the user_sessions implementation).
* ``parse_once``: one query reads Kafka, parses, validates and de-duplicates, and appends
  the events to a Delta table exactly once; every analytic streams from that table.
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

from benchmarks.pandas_sessions import user_sessions_with_state
from include.progress import progress_path
from include.settings import Settings, get_settings
from spark_jobs import streaming_app as app
from spark_jobs import transforms

EVENTS_QUERY = "events"


def with_pandas_sessions() -> None:
    app.ANALYTICS[app.SESSION_QUERY] = app.Analytic(
        user_sessions_with_state,
        app.ANALYTICS[app.SESSION_QUERY].columns,
        app.ANALYTICS[app.SESSION_QUERY].key_columns,
    )


def write_events_once(table: Path, checkpoint: Path):
    """foreachBatch function: append a batch to the events table, skipping a replay."""

    def write(batch: DataFrame, batch_id: int) -> None:
        if batch.isEmpty():
            return
        app_id = f"{EVENTS_QUERY}-{app.checkpoint_query_id(checkpoint)}"
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
    valid = transforms.valid_events(parsed)
    if not (table / "_delta_log").exists():
        # A Delta stream needs its source table to exist, schema included.
        spark.createDataFrame([], valid.schema).write.format("delta").save(str(table))
    deduplicated = transforms.deduplicate(valid, settings.analytics.watermark_seconds)
    queries = [
        deduplicated.writeStream.queryName(EVENTS_QUERY)
        .option("checkpointLocation", str(checkpoint))
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .foreachBatch(write_events_once(table, checkpoint))
        .start(),
        app.start_dead_letters(parsed, settings, args.trigger_seconds),
    ]
    events = spark.readStream.format("delta").load(str(table))
    watermarked = events.withWatermark(
        "event_time", f"{settings.analytics.watermark_seconds} seconds"
    )
    for name in args.queries:
        analytic = app.ANALYTICS[name]
        sink = app.BatchSink(
            query=name,
            checkpoint=settings.checkpoint_path(name),
            table=settings.table_path(name),
            table_columns=analytic.columns,
            kafka_records=lambda df, a=analytic: transforms.to_kafka_records(df, a.key_columns),
            topic=settings.output_topic(name),
            kafka_options=settings.spark_kafka_options(),
        )
        # A transform that de-duplicates sets the watermark itself (setting it twice is
        # refused); the de-duplication finds nothing left to drop.
        source = events if analytic.deduplicates else watermarked
        result = analytic.transform(source, settings.analytics)
        queries.append(app.start_query(result, name, sink, args.trigger_seconds))
    return queries


def main() -> int:
    parser = argparse.ArgumentParser(prog="design_app")
    parser.add_argument("--design", choices=["independent", "parse_once"], required=True)
    parser.add_argument(
        "--sessions", choices=["session_window", "transform_with_state"], default="session_window"
    )
    parser.add_argument("--queries", default=",".join(app.ANALYTICS))
    parser.add_argument("--trigger-seconds", type=int, default=1)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=50_000)
    parser.add_argument("--stop-file", type=Path, required=True)
    args = parser.parse_args()
    args.queries = [q for q in args.queries.split(",") if q]
    settings = get_settings()
    if args.sessions == "transform_with_state":
        with_pandas_sessions()

    spark = app.build_session(settings)
    spark.streams.addListener(app.ProgressRecorder(progress_path(settings.metrics_dir)))
    parsed = transforms.parse_events(
        app.read_events(spark, settings, "earliest", args.max_offsets_per_trigger),
        settings.events,
    )
    if args.design == "parse_once":
        queries = parse_once(spark, parsed, settings, args)
    else:
        queries = [
            app.QUERY_STARTERS[name](parsed, settings, args.trigger_seconds)
            for name in args.queries
        ]
    try:
        return app.supervise(queries, args.stop_file, None, threading.Event())
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
