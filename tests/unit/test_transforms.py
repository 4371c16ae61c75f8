"""Unit tests for spark_jobs.transforms (the analytics) on small hand-built frames.

Every expected value below is worked out by hand in the comments, never by calling the
code under test.  Timestamps are compared as strings cast in the session's UTC zone, so the
tests do not depend on the time zone of the machine running them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from include.analytics import BY_NAME
from include.settings.sections import AnalyticsSettings
from spark_jobs.output_topics import to_kafka_records
from spark_jobs.transforms import (
    click_to_purchase,
    conversion_funnel,
    deduplicate,
    high_value_users,
    revenue_by_category,
    user_sessions,
    with_watermark,
)

ANALYTICS = AnalyticsSettings(
    watermark_seconds=120, revenue_window_seconds=60, revenue_slide_seconds=30
)


# ---------------------------------------------------------------- analytics

EVENT_SCHEMA = (
    "event_id string, event_type string, event_time string, category string, revenue string"
)


def events_frame(
    spark: SparkSession, rows: list[tuple[str, str, str, str, str | None]]
) -> DataFrame:
    return spark.createDataFrame(rows, EVENT_SCHEMA).select(
        "event_id",
        "event_type",
        F.col("event_time").cast("timestamp").alias("event_time"),
        "category",
        F.col("revenue").cast("decimal(18,2)").alias("revenue"),
    )


def as_tuples(result: DataFrame) -> list[tuple[Any, ...]]:
    return sorted(
        tuple(r)
        for r in result.select(
            F.col("window_start").cast("string"),
            F.col("window_end").cast("string"),
            "category",
            "total_revenue",
            "purchase_count",
            "avg_order_value",
        ).collect()
    )


PURCHASES = [
    # Books at 12:00:10 -> windows [11:59:30, 12:00:30) and [12:00:00, 12:01:00)
    ("p1", "purchase", "2026-01-01 12:00:10", "Books", "20.00"),
    # Books exactly on a boundary, 12:00:30 -> [12:00:00, 12:01:00) and [12:00:30, 12:01:30),
    # NOT [11:59:30, 12:00:30) whose end is exclusive
    ("p2", "purchase", "2026-01-01 12:00:30", "Books", "10.00"),
    # Books at 12:00:45 -> [12:00:00, 12:01:00) and [12:00:30, 12:01:30)
    ("p3", "purchase", "2026-01-01 12:00:45", "Books", "0.05"),
    # Toys exactly at 12:01:00 -> [12:00:30, 12:01:30) and [12:01:00, 12:02:00)
    ("p4", "purchase", "2026-01-01 12:01:00", "Toys", "5.00"),
    # Not purchases: ignored even with a revenue value
    ("v1", "page_view", "2026-01-01 12:00:20", "Books", "999.00"),
    ("c1", "add_to_cart", "2026-01-01 12:00:20", "Toys", None),
]

EXPECTED_REVENUE = [
    # p1 only
    ("2026-01-01 11:59:30", "2026-01-01 12:00:30", "Books", Decimal("20.00"), 1, Decimal("20.00")),
    # p1 + p2 + p3 = 30.05; 30.05 / 3 = 10.01666.. -> 10.02
    ("2026-01-01 12:00:00", "2026-01-01 12:01:00", "Books", Decimal("30.05"), 3, Decimal("10.02")),
    # p2 + p3 = 10.05; 10.05 / 2 = 5.025 -> 5.03 (half up; banker's rounding would give 5.02)
    ("2026-01-01 12:00:30", "2026-01-01 12:01:30", "Books", Decimal("10.05"), 2, Decimal("5.03")),
    ("2026-01-01 12:00:30", "2026-01-01 12:01:30", "Toys", Decimal("5.00"), 1, Decimal("5.00")),
    ("2026-01-01 12:01:00", "2026-01-01 12:02:00", "Toys", Decimal("5.00"), 1, Decimal("5.00")),
]


def test_revenue_by_category_windows_and_rounding(spark: SparkSession) -> None:
    result = revenue_by_category(events_frame(spark, PURCHASES), ANALYTICS)
    assert tuple(result.columns) == BY_NAME["revenue_by_category"].columns
    types = {f.name: f.dataType.simpleString() for f in result.schema.fields}
    assert types == {
        "window_start": "timestamp",
        "window_end": "timestamp",
        "category": "string",
        "total_revenue": "decimal(18,2)",
        "purchase_count": "bigint",
        "avg_order_value": "decimal(18,2)",
    }
    assert as_tuples(result) == EXPECTED_REVENUE


def test_deduplicate_on_a_static_frame(spark: SparkSession) -> None:
    rows = [*PURCHASES, ("p2", "purchase", "2026-01-01 12:00:30", "Books", "10.00")]
    deduped = deduplicate(events_frame(spark, rows))
    assert sorted(r.event_id for r in deduped.collect()) == ["c1", "p1", "p2", "p3", "p4", "v1"]
    # Counted once: the same windows as without the duplicate.
    assert as_tuples(revenue_by_category(deduped, ANALYTICS)) == EXPECTED_REVENUE


def test_deduplicate_and_revenue_on_a_stream(spark: SparkSession, tmp_path: Path) -> None:
    """The streaming path: dropDuplicatesWithinWatermark feeding a windowed aggregation."""
    source = tmp_path / "in"
    source.mkdir()

    def drop_file(name: str, rows: list[tuple[str, str, str, str, str | None]]) -> None:
        keys = ("event_id", "event_type", "event_time", "category", "revenue")
        lines = [json.dumps(dict(zip(keys, row, strict=True))) for row in rows]
        (source / f"{name}.json").write_text("\n".join(lines) + "\n")

    # p2 arrives twice in the first batch and once more in the second.
    drop_file("1", [*PURCHASES, PURCHASES[1]])
    stream = spark.readStream.schema(EVENT_SCHEMA).json(str(source))
    typed = stream.select(
        "event_id",
        "event_type",
        F.col("event_time").cast("timestamp").alias("event_time"),
        "category",
        F.col("revenue").cast("decimal(18,2)").alias("revenue"),
    )
    result = revenue_by_category(
        deduplicate(with_watermark(typed, ANALYTICS.watermark_seconds)), ANALYTICS
    )
    query = (
        result.writeStream.format("memory")
        .queryName("revenue_stream_test")
        .outputMode("append")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    try:
        query.processAllAvailable()
        # Nothing is final yet: the watermark is still below every window's end.
        assert spark.table("revenue_stream_test").count() == 0
        # A purchase an hour later moves the watermark past all windows above; the
        # replayed p2 is within the 120 s dedupe horizon of the first batch's max event time.
        drop_file("2", [PURCHASES[1], ("p9", "purchase", "2026-01-01 13:00:00", "Home", "1.00")])
        query.processAllAvailable()
        drop_file("3", [("p10", "purchase", "2026-01-01 13:00:01", "Home", "1.00")])
        query.processAllAvailable()
        assert as_tuples(spark.table("revenue_stream_test")) == EXPECTED_REVENUE
    finally:
        query.stop()


def test_to_kafka_records_keys_and_values(spark: SparkSession) -> None:
    result = revenue_by_category(events_frame(spark, PURCHASES[:1]), ANALYTICS)
    records = sorted(
        (r.key.decode(), json.loads(r.value))
        for r in to_kafka_records(result, ["category", "window_start"]).collect()
    )
    assert [key for key, _ in records] == [
        "Books|2026-01-01T11:59:30.000Z",
        "Books|2026-01-01T12:00:00.000Z",
    ]
    assert records[0][1] == {
        "window_start": "2026-01-01T11:59:30.000Z",
        "window_end": "2026-01-01T12:00:30.000Z",
        "category": "Books",
        "total_revenue": 20.0,
        "purchase_count": 1,
        "avg_order_value": 20.0,
    }


# ---------------------------------------------------------------- high value users, funnel

FIVE_MINUTES = AnalyticsSettings(
    watermark_seconds=60,
    high_value_window_seconds=300,
    high_value_slide_seconds=60,
    high_value_threshold=100,
    funnel_window_seconds=300,
    funnel_slide_seconds=60,
)
USER_EVENT_SCHEMA = (
    "event_id string, event_type string, event_time string, user_id string, "
    "product_id string, revenue string"
)
# Product names in the frames below are the id in capitals: "p1" is named "P1".


def user_events(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, USER_EVENT_SCHEMA).select(
        "event_id",
        "event_type",
        F.col("event_time").cast("timestamp").alias("event_time"),
        "user_id",
        "product_id",
        F.upper("product_id").alias("product_name"),
        F.col("revenue").cast("decimal(18,2)").alias("revenue"),
    )


def test_high_value_users_threshold_windows_and_sorted_products(spark: SparkSession) -> None:
    rows = [
        ("a", "purchase", "2026-01-01 12:00:10", "u1", "p2", "60.00"),
        ("b", "purchase", "2026-01-01 12:01:10", "u1", "p1", "50.00"),
        ("c", "purchase", "2026-01-01 12:01:20", "u2", "p1", "100.00"),  # not above 100
        ("d", "page_view", "2026-01-01 12:01:20", "u2", "p9", "500.00"),  # not a purchase
    ]
    result = high_value_users(user_events(spark, rows), FIVE_MINUTES)
    got = sorted(
        (
            r.window_start.strftime("%H:%M"),
            r.user_id,
            r.total_spent,
            r.purchase_count,
            list(r.products_purchased),
            list(r.product_ids_purchased),
        )
        for r in result.collect()
    )
    # u1 spent 60 + 50 = 110 in each 5-minute window holding both purchases: the windows
    # starting 11:57 to 12:00. The window starting 12:01 holds only 'b' (50), 11:56 only 'a'.
    assert got == [
        (start, "u1", Decimal("110.00"), 2, ["P1", "P2"], ["p1", "p2"])
        for start in ("11:57", "11:58", "11:59", "12:00")
    ]


def test_conversion_funnel_is_exact_and_null_without_divisor(spark: SparkSession) -> None:
    rows = [
        ("1", "page_view", "2026-01-01 12:00:10", "u1", "p1", None),
        ("2", "page_view", "2026-01-01 12:00:20", "u1", "p2", None),  # u1 counted once
        ("3", "add_to_cart", "2026-01-01 12:00:30", "u1", "p1", None),
        ("4", "page_view", "2026-01-01 12:00:40", "u2", "p1", None),
        ("5", "purchase", "2026-01-01 12:00:50", "u1", "p1", "10.00"),
        ("6", "add_to_cart", "2026-01-01 12:20:00", "u3", "p1", None),  # a cart, no views
    ]
    result = conversion_funnel(user_events(spark, rows), FIVE_MINUTES)
    got = {r.window_start.strftime("%H:%M"): tuple(r)[2:] for r in result.collect()}
    # Events at 12:00:xx fall in the windows starting 11:56 .. 12:00.
    for start in ("11:56", "11:57", "11:58", "11:59", "12:00"):
        assert got[start] == (2, 1, 1, Decimal("50.00"), Decimal("100.00"))
    # 12:20:00 is the start of a window and the 5th minute of the one starting 12:16.
    for start in ("12:16", "12:17", "12:18", "12:19", "12:20"):
        assert got[start] == (0, 1, 0, None, Decimal("0.00"))
    assert len(got) == 10


def test_user_sessions_split_by_exactly_the_gap(spark: SparkSession) -> None:
    rows = [
        ("1", "page_view", "2026-01-01 12:00:00", "u1", "p1", None),
        ("2", "page_view", "2026-01-01 12:10:00", "u1", "p1", None),  # same product: 1
        ("3", "purchase", "2026-01-01 12:29:59", "u1", "p2", "20.00"),  # 29:59 later: same
        ("4", "page_view", "2026-01-01 12:59:59", "u1", "p3", None),  # exactly 30 min: new
    ]
    analytics = AnalyticsSettings(session_gap_seconds=1800)
    got = sorted(tuple(r) for r in user_sessions(user_events(spark, rows), analytics).collect())
    assert [(r[0], r[1].strftime("%H:%M:%S"), r[2].strftime("%H:%M:%S"), *r[3:]) for r in got] == [
        ("u1", "12:00:00", "12:29:59", 1799, 3, Decimal("20.00"), 1),
        ("u1", "12:59:59", "12:59:59", 0, 1, Decimal("0.00"), 1),
    ]


def test_click_to_purchase_time_range_is_strict_after_and_inclusive_at_30_minutes(
    spark: SparkSession,
) -> None:
    rows = [
        ("v1", "page_view", "2026-01-01 12:00:00", "u1", "p1", None),
        ("b1", "purchase", "2026-01-01 12:30:00", "u1", "p1", "9.99"),  # exactly 30 min: in
        ("b1", "purchase", "2026-01-01 12:30:00", "u1", "p1", "9.99"),  # re-sent: once
        ("v1", "page_view", "2026-01-01 12:00:00", "u1", "p1", None),  # re-sent: once
        ("b2", "purchase", "2026-01-01 12:30:01", "u1", "p1", "5.00"),  # 30 min 1 s: out
        ("b3", "purchase", "2026-01-01 12:00:00", "u1", "p1", "7.00"),  # same instant: out
        ("b4", "purchase", "2026-01-01 12:05:00", "u1", "p2", "7.00"),  # other product
        ("b5", "purchase", "2026-01-01 12:05:00", "u2", "p1", "7.00"),  # other user
    ]
    events = user_events(spark, rows).withColumn("device_type", F.lit("mobile"))
    got = click_to_purchase(events, AnalyticsSettings(attribution_seconds=1800)).collect()
    assert [
        (r.click_event_id, r.purchase_event_id, r.time_to_purchase_seconds, r.revenue) for r in got
    ] == [("v1", "b1", 1800, Decimal("9.99"))]
