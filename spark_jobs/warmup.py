"""A short run of the streaming pipeline on generated events, with no broker: the classes a
streaming or backfill driver loads, for `make setup` to record in the drivers' class-data
archive (include.runtime.spark_cds).  Its rows are thrown away.

Two files of events stand in for the Kafka topic (the same columns as the Kafka source's),
so every stateful operator, the state store and the sink's Arrow collect run twice: once
to start, once with state to read.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from include.analytics import OUTPUTS
from include.generators import EventGenerator
from include.settings import Settings
from spark_jobs.pipeline import pipeline_rows
from spark_jobs.session import build_session
from spark_jobs.sinks import collect_arrow
from spark_jobs.validation import parse_events

EVENTS_PER_FILE = 2_000


def write_events(folder: Path, name: str, start: datetime, seed: int) -> None:
    """One file of generated events, one JSON document per line (and one malformed)."""
    events = EventGenerator(seed=seed).stream(start, timedelta(seconds=1), EVENTS_PER_FILE)
    lines = [json.dumps(e) for e in events]
    (folder / f"{name}.txt").write_text("\n".join([*lines, "{not json"]) + "\n")


def as_kafka_records(lines: DataFrame, topic: str) -> DataFrame:
    """Text lines in the Kafka source's columns."""
    return lines.select(
        F.lit(None).cast("binary").alias("key"),
        F.col("value").cast("binary").alias("value"),
        F.lit(topic).alias("topic"),
        F.lit(0).alias("partition"),
        F.lit(0).cast("long").alias("offset"),
        F.current_timestamp().alias("timestamp"),
    )


def main() -> int:
    settings = Settings()
    spark = build_session(settings)
    with tempfile.TemporaryDirectory(prefix="spark-warmup-") as tmp:
        source = Path(tmp) / "in"
        source.mkdir()
        start = datetime.now(UTC) - timedelta(hours=2)
        write_events(source, "1", start, seed=1)
        raw = as_kafka_records(spark.readStream.text(str(source)), settings.kafka.input_topic)
        rows = pipeline_rows(
            parse_events(raw, settings.events, settings.registry_url),
            settings,
            [o.name for o in OUTPUTS],
        )
        query = (
            rows.writeStream.foreachBatch(lambda batch, _: collect_arrow(batch))
            .option("checkpointLocation", str(Path(tmp) / "checkpoint"))
            .start()
        )
        try:
            query.processAllAvailable()
            write_events(source, "2", start + timedelta(hours=1), seed=2)
            query.processAllAvailable()
        finally:
            query.stop()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
