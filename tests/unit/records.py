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


def raw_frame(
    spark: SparkSession, values: list[bytes | None], kafka_ts: str = KAFKA_TS
) -> DataFrame:
    """Kafka-source-shaped rows; offset i holds values[i], partition 1, key 'k<i>'."""
    rows = [(f"k{i}".encode(), v, TOPIC, 1, i, kafka_ts) for i, v in enumerate(values)]
    frame = spark.createDataFrame(rows, RAW_SCHEMA)
    return frame.withColumn("timestamp", F.col("timestamp").cast("timestamp"))


def reason_of(spark: SparkSession, value: bytes | None, kafka_ts: str = KAFKA_TS) -> str | None:
    parsed = parse_events(raw_frame(spark, [value], kafka_ts), EVENTS)
    rows = parsed.select("dlq_reason").collect()
    assert len(rows) == 1
    return rows[0].dlq_reason
