"""Batch backfill of one interval: Kafka by timestamp -> the streaming transforms -> Delta.

    PYTHONPATH=. spark-submit --jars <connector jars> spark_jobs/backfill_app.py \\
        --start 2026-11-26T10:00:00Z --end 2026-11-26T11:00:00Z

Same validation and transforms as the streaming job (spark_jobs/validation.py,
spark_jobs/transforms.py), run for every analytic of include/analytics.py on a static frame of
the interval's records (include/backfill.py explains the read range).  Each analytic's rows
whose time key lies in [start, end) replace that slice of
``<state>/tables/backfill/<analytic>`` (Delta ``replaceWhere``), so a rerun gives the same
rows.  Then the interval is reconciled with the streaming tables for the windows the
stream has closed; the report goes to the log and to
``<state>/metrics/backfill/<start>--<end>.json``.  Exit codes: 0 done (differences are
reported, not fatal), 5 interval no longer in Kafka, 1 failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from include.analytics import ANALYTICS, BY_NAME
from include.backfill import (
    Interval,
    IntervalNotRetained,
    NothingToBackfill,
    backfill_read_options,
    check_retention,
    write_report,
)
from include.kafka.client import consumer
from include.kafka.security import spark_kafka_options
from include.settings import Settings, get_settings
from spark_jobs.session import build_session
from spark_jobs.transforms import analytic_rows
from spark_jobs.validation import parse_events, valid_events

log = logging.getLogger("backfill_app")
EXIT_NOT_RETAINED = 5
EXAMPLE_ROWS = 20


def _literal(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def in_interval(frame: DataFrame, column: str, interval: Interval) -> DataFrame:
    """The rows of `frame` whose timestamp `column` lies in the interval [start, end)."""
    start, end = _literal(interval.start), _literal(interval.end)
    return frame.filter(
        (F.col(column) >= F.to_timestamp(F.lit(start)))
        & (F.col(column) < F.to_timestamp(F.lit(end)))
    )


def compute(spark: SparkSession, settings: Settings, interval: Interval) -> dict[str, DataFrame]:
    """Each analytic's rows of the interval, from the interval's Kafka records."""
    topic = settings.kafka.input_topic
    reader = consumer(settings.bootstrap_servers)
    partitions = len(reader.partitions_for_topic(topic) or [])
    reader.close()
    raw = (
        spark.read.format("kafka")
        .options(**spark_kafka_options(settings))
        .options(
            **backfill_read_options(topic, partitions, interval, settings.backfill.margin_seconds)
        )
        .load()
    )
    valid = valid_events(parse_events(raw, settings.events, settings.registry_url)).cache()
    return {
        analytic.name: in_interval(
            analytic_rows(analytic, valid, settings.analytics), analytic.time_column, interval
        )
        for analytic in ANALYTICS
    }


def write(settings: Settings, name: str, rows: DataFrame, interval: Interval) -> int:
    """Replace the interval's slice of the backfill table with `rows`; the row count."""
    path = settings.paths.backfill_table_path(name)
    key = BY_NAME[name].time_column
    writer = rows.write.format("delta").mode("overwrite")
    if (path / "_delta_log").exists():
        writer = writer.option(
            "replaceWhere",
            f"{key} >= '{_literal(interval.start)}' AND {key} < '{_literal(interval.end)}'",
        )
    writer.save(str(path))
    return rows.count()


def reconcile(
    spark: SparkSession, settings: Settings, name: str, rows: DataFrame, interval: Interval
) -> dict:
    """Backfill vs streaming table over the interval's rows the stream has emitted so far
    (time key up to the newest one in the streaming table)."""
    stream_path = settings.paths.table_path(name)
    if not (stream_path / "_delta_log").exists():
        return {"compared": 0, "note": "no streaming table yet"}
    key = BY_NAME[name].time_column
    stream = in_interval(spark.read.format("delta").load(str(stream_path)), key, interval)
    stream = stream.select(*rows.columns)
    newest = stream.agg(F.max(key)).collect()[0][0]  # one row: an aggregate without groups
    if newest is None:
        return {"compared": 0, "note": "the stream has no rows in this interval yet"}
    batch = rows.filter(F.col(key) <= F.lit(newest))
    only_backfill = batch.exceptAll(stream).cache()
    only_stream = stream.exceptAll(batch).cache()
    report = {
        "compared": batch.count(),
        "streaming_rows": stream.count(),
        "only_in_backfill": only_backfill.count(),
        "only_in_stream": only_stream.count(),
        "duplicate_keys_in_stream": stream.groupBy(*BY_NAME[name].keys)
        .count()
        .filter("count > 1")
        .count(),
        "up_to": str(newest),
        # Which rows differ (the first few, by key): what the reconciliation page shows.
        "examples": {
            "only_in_backfill": _examples(only_backfill, key),
            "only_in_stream": _examples(only_stream, key),
        },
    }
    only_backfill.unpersist()
    only_stream.unpersist()
    return report


def _examples(rows: DataFrame, key: str) -> list[dict]:
    """The first EXAMPLE_ROWS rows by time key, as JSON values (times in UTC, ISO 8601)."""
    return [json.loads(r) for r in rows.orderBy(key).limit(EXAMPLE_ROWS).toJSON().collect()]


def parse_args(argv: Sequence[str] | None) -> tuple[Interval, dict[str, str] | None]:
    """The interval of ``--start`` and ``--end``, and the Airflow run (``--dag-id``,
    ``--run-id``) the report is for, if any; a bad interval exits with the usage error."""
    parser = argparse.ArgumentParser(prog="backfill_app", description=__doc__.splitlines()[0])
    parser.add_argument("--start", required=True, help="interval start, ISO 8601 (UTC if no zone)")
    parser.add_argument("--end", required=True, help="interval end (exclusive), ISO 8601")
    parser.add_argument("--dag-id", help="the Airflow DAG whose run this is (for the report)")
    parser.add_argument("--run-id", help="the Airflow run this is (for the report's page)")
    args = parser.parse_args(argv)
    try:
        interval = Interval.parse(args.start, args.end)
    except ValueError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits
    airflow = {"dag_id": args.dag_id, "run_id": args.run_id} if args.run_id else None
    return interval, airflow


def main(argv: Sequence[str] | None = None) -> int:
    """Backfill the interval of the command line; the exit code of the module docstring."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = get_settings()
    interval, airflow = parse_args(argv)
    margin = settings.backfill.margin_seconds
    try:
        check_retention(settings.bootstrap_servers, settings.kafka.input_topic, interval, margin)
    except IntervalNotRetained as error:
        log.error("%s", error)
        print(f"backfill refused: {error}", file=sys.stderr)
        return EXIT_NOT_RETAINED
    except NothingToBackfill as error:
        log.info("%s", error)
        return 0

    log.info("backfilling %s from %s (margin %d s)", interval, settings.kafka.input_topic, margin)
    spark = build_session(settings)
    report: dict[str, dict] = {}
    try:
        for name, rows in compute(spark, settings, interval).items():
            rows = rows.cache()
            count = write(settings, name, rows, interval)
            report[name] = {"rows": count, **reconcile(spark, settings, name, rows, interval)}
            differences = report[name].get("only_in_backfill", 0) + report[name].get(
                "only_in_stream", 0
            )
            log.info(
                "%s: %d rows written for %s; %s",
                name,
                count,
                interval,
                "matches the streaming table"
                if report[name].get("compared") and not differences
                else f"reconciliation: {json.dumps(report[name])}",
            )
            rows.unpersist()
    except Exception as error:
        log.exception("the backfill failed")
        print(f"backfill failed: {error}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    path = write_report(settings, interval, report, airflow)
    log.info("reconciliation report: %s (the task's Reconciliation button shows it)", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
