"""Small hand-built Kafka records for the validation tests (spark_jobs.validation): one
valid purchase, variations of it, and Kafka-source-shaped frames of them."""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from include.settings.sections import EventSettings
from spark_jobs.validation import (
    parse_events,
)

TOPIC = "ecommerce-events"
# Kafka's record time in most tests: one second after the event time of BASE_EVENT.
KAFKA_TS = "2026-01-01 12:00:31"
# Small limit so the oversize case needs no megabyte payload.
EVENTS = EventSettings(max_event_bytes=1024, max_event_lag_seconds=3600, max_event_lead_seconds=600)

BASE_EVENT: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "purchase",
    "timestamp": "2026-01-01T12:00:30.000+00:00",
    "user_id": "user_000001",
    "product_id": "prod_00001",
    "product_name": "Books Classic 1",
    "category": "Books",
    "price": 12.5,
    "quantity": 2,
    "session_id": "s-1",
    "device_type": "mobile",
    "country": "US",
    "revenue": 25.0,
}

RAW_SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp string"


def event_bytes(drop: tuple[str, ...] = (), **changes: Any) -> bytes:
    body = {k: v for k, v in BASE_EVENT.items() if k not in drop}
    body.update(changes)
    return json.dumps(body).encode()


Record = tuple[bytes | None, str]  # a record's value and its Kafka timestamp


def raw_frame(
    spark: SparkSession, values: list[bytes | None], kafka_ts: str = KAFKA_TS
) -> DataFrame:
    """Kafka-source-shaped rows; offset i holds values[i], partition 1, key 'k<i>'."""
    return timed_frame(spark, [(value, kafka_ts) for value in values])


def timed_frame(spark: SparkSession, records: list[Record]) -> DataFrame:
    """raw_frame with each record's own Kafka timestamp."""
    rows = [(f"k{i}".encode(), v, TOPIC, 1, i, ts) for i, (v, ts) in enumerate(records)]
    frame = spark.createDataFrame(rows, RAW_SCHEMA)
    return frame.withColumn("timestamp", F.col("timestamp").cast("timestamp"))


class Reasons:
    """The dead-letter reason of each of many single records, judged in one Spark query.

    parse_events judges every row alone, so one frame holding all of a test module's cases
    gives each case the reason it would get by itself, for the price of one query instead of
    one per case (a query of this plan costs about a second on two cores).  Call it with a
    record that was among `records`.
    """

    def __init__(self, spark: SparkSession, records: list[Record]) -> None:
        judged = parse_events(timed_frame(spark, records), EVENTS)
        judged = judged.select("offset", "dlq_reason").collect()
        assert len(judged) == len(records), "every record gets exactly one verdict"
        reason_at = {row.offset: row.dlq_reason for row in judged}
        self._reasons = {record: reason_at[i] for i, record in enumerate(records)}

    def __call__(self, value: bytes | None, kafka_ts: str = KAFKA_TS) -> str | None:
        return self._reasons[(value, kafka_ts)]
