"""Unit tests for spark_jobs.transforms on small hand-built frames.

Every expected value below is worked out by hand in the comments, never by calling the
code under test.  Timestamps are compared as strings cast in the session's UTC zone, so the
tests do not depend on the time zone of the machine running them.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, IntegerType, StringType, TimestampType

from include.settings import AnalyticsSettings, EventSettings
from include.tables import REVENUE_COLUMNS
from spark_jobs.transforms import (
    EVENT_COLUMNS,
    QUARANTINE_COLUMNS,
    click_to_purchase,
    conversion_funnel,
    dead_letters,
    deduplicate,
    high_value_users,
    parse_events,
    revenue_by_category,
    to_kafka_records,
    user_sessions,
    valid_events,
)

TOPIC = "ecommerce-events"
# Kafka's record time in most tests: one second after the event time of BASE_EVENT.
KAFKA_TS = "2026-01-01 12:00:31"
# Small limit so the oversize case needs no megabyte payload.
EVENTS = EventSettings(max_event_bytes=1024, max_event_lag_seconds=3600, max_event_lead_seconds=600)
ANALYTICS = AnalyticsSettings(
    watermark_seconds=120, revenue_window_seconds=60, revenue_slide_seconds=30
)

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


# ---------------------------------------------------------------- parse_events


def test_valid_purchase_is_typed(spark: SparkSession) -> None:
    parsed = parse_events(raw_frame(spark, [event_bytes()]), EVENTS)
    types = {f.name: f.dataType for f in parsed.schema.fields}
    assert types["event_time"] == TimestampType()
    assert types["price"] == DecimalType(12, 2)
    assert types["quantity"] == IntegerType()
    assert types["revenue"] == DecimalType(18, 2)
    assert types["dlq_reason"] == StringType()

    row = parsed.withColumn("event_time", F.col("event_time").cast("string")).collect()[0]
    assert row.dlq_reason is None
    assert row.event_id == "e-1"
    assert row.event_type == "purchase"
    assert row.event_time == "2026-01-01 12:00:30"
    assert row.category == "Books"
    assert row.price == Decimal("12.50")
    assert row.quantity == 2
    assert row.revenue == Decimal("25.00")
    # Source columns travel along for the dead-letter path.
    assert (row.topic, row.partition, row.offset, row.key) == (TOPIC, 1, 0, b"k0")
    assert row.value == event_bytes()


def test_offset_is_applied_and_non_purchase_has_no_revenue(spark: SparkSession) -> None:
    # 17:30:30 at +05:30 is 12:00:30 UTC; a page view carries no revenue even if sent one.
    value = event_bytes(
        event_type="page_view", quantity=1, timestamp="2026-01-01T17:30:30+05:30", revenue=99
    )
    row = (
        parse_events(raw_frame(spark, [value]), EVENTS)
        .withColumn("event_time", F.col("event_time").cast("string"))
        .collect()[0]
    )
    assert row.dlq_reason is None
    assert row.event_time == "2026-01-01 12:00:30"
    assert row.revenue is None


@pytest.mark.parametrize(
    ("timestamp", "zone", "expected"),
    [
        # Python's datetime.now().isoformat(): no zone, microseconds ...
        ("2026-01-01T12:00:30.123456", "UTC", "2026-01-01 12:00:30.123456"),
        # ... and no fraction at all when the microseconds are 0.
        ("2026-01-01T12:00:30", "UTC", "2026-01-01 12:00:30"),
        # Read in the configured zone: Berlin is UTC+1 in January, UTC+2 in July.
        ("2026-01-01T13:00:30", "Europe/Berlin", "2026-01-01 12:00:30"),
        ("2026-07-01T14:00:30.5", "Europe/Berlin", "2026-07-01 12:00:30.5"),
        ("2026-01-01T17:30:30", "Asia/Kolkata", "2026-01-01 12:00:30"),
        # An offset in the text wins over the configured zone.
        ("2026-01-01T12:00:30Z", "Europe/Berlin", "2026-01-01 12:00:30"),
        ("2026-01-01T13:00:30+01:00", "Asia/Kolkata", "2026-01-01 12:00:30"),
    ],
)
def test_zone_less_timestamps_are_read_in_the_configured_zone(
    spark: SparkSession, timestamp: str, zone: str, expected: str
) -> None:
    events = EVENTS.model_copy(update={"naive_timezone": zone})
    # Kafka's record time = the expected event time: inside the absurd-timestamp bounds.
    raw = raw_frame(spark, [event_bytes(timestamp=timestamp)], kafka_ts=expected)
    parsed = parse_events(raw, events)
    row = parsed.withColumn("event_time", F.col("event_time").cast("string")).collect()[0]
    assert (row.dlq_reason, row.event_time) == (None, expected)


@pytest.mark.parametrize("event_type", ["page_view", "remove_from_cart"])
def test_quantity_0_is_valid_on_views_and_removals(spark: SparkSession, event_type: str) -> None:
    # The tutorial sends quantity 0 on every page view and removal from the cart.
    value = event_bytes(event_type=event_type, quantity=0, revenue=None)
    row = parse_events(raw_frame(spark, [value]), EVENTS).collect()[0]
    assert (row.dlq_reason, row.quantity) == (None, 0)


@pytest.mark.parametrize(
    ("revenue", "expected"),
    [
        # price 12.50 * quantity 2 = 25.00; revenue is read to the cent (half up), and a
        # difference up to 0.01 is float noise or a rounding shop, not a mismatch.
        (25.0000000000001, None),
        (25.01, None),
        (24.99, None),
        (25.014999, None),  # reads as 25.01
        (25.015, "revenue_mismatch"),  # reads as 25.02
        (24.985, None),  # reads as 24.99: half up
        (24.984, "revenue_mismatch"),  # reads as 24.98
    ],
)
def test_revenue_noise_within_the_tolerance_is_accepted(
    spark: SparkSession, revenue: float, expected: str | None
) -> None:
    assert reason_of(spark, event_bytes(revenue=revenue)) == expected


def test_the_tutorials_float_revenue_is_exact_to_the_cent(spark: SparkSession) -> None:
    # 1299.99 * 3 in floats is 3899.9700000000003: the event is valid, its revenue 3899.97.
    value = event_bytes(price=1299.99, quantity=3, revenue=1299.99 * 3)
    row = parse_events(raw_frame(spark, [value]), EVENTS).collect()[0]
    assert (row.dlq_reason, row.price, row.revenue) == (
        None,
        Decimal("1299.99"),
        Decimal("3899.97"),
    )


def test_generator_style_values_are_accepted(spark: SparkSession) -> None:
    # "Z" offset, revenue within the 0.01 tolerance, quantity written as 2.0.
    value = event_bytes(timestamp="2026-01-01T12:00:30Z", quantity=2.0, revenue=25.01)
    assert reason_of(spark, value) is None


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"price": "12.50"}, "wrong_type:price"),
        ({"quantity": "2"}, "wrong_type:quantity"),
        ({"revenue": "25.00"}, "wrong_type:revenue"),
        ({"event_id": 123}, "wrong_type:event_id"),
        ({"category": 5}, "wrong_type:category"),
        ({"user_id": True}, "wrong_type:user_id"),
        ({"session_id": 1.5}, "wrong_type:session_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_types_are_checked_not_coerced(spark: SparkSession, changes: dict, expected: str) -> None:
    assert reason_of(spark, event_bytes(**changes)) == expected


def test_numeric_strings_pass_only_when_the_setting_allows_them(spark: SparkSession) -> None:
    lenient = EVENTS.model_copy(update={"accept_numeric_strings": True})
    value = event_bytes(price="12.50", quantity="2", revenue="25.00")
    row = parse_events(raw_frame(spark, [value]), lenient).collect()[0]
    assert (row.dlq_reason, row.price, row.quantity) == (None, Decimal("12.50"), 2)
    # Still only numbers: text that is no number is a wrong type either way.
    wrong = parse_events(raw_frame(spark, [event_bytes(price="ten")]), lenient).collect()[0]
    assert wrong.dlq_reason == "wrong_type:price"
    # Text fields stay text.
    numeric_id = parse_events(raw_frame(spark, [event_bytes(event_id=7)]), lenient).collect()[0]
    assert numeric_id.dlq_reason == "wrong_type:event_id"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"category": "Books\u202etxt.exe"}, "unsafe_text:category"),  # right-to-left override
        ({"category": "\u2066Books\u2069"}, "unsafe_text:category"),  # isolates
        ({"category": "Books\u200f"}, "unsafe_text:category"),  # right-to-left mark
        ({"category": "Bo\u0007oks"}, "unsafe_text:category"),  # a bell
        ({"category": "Books\n"}, "unsafe_text:category"),
        ({"product_name": "Tab\there"}, "unsafe_text:product_name"),
        ({"user_id": "u\u0000"}, "unsafe_text:user_id"),
        # Any printable text is fine, accents, scripts and emoji included.
        ({"category": "Bücher & Spiele"}, None),
        ({"category": "玩具 🧸"}, None),
        ({"category": "ألعاب"}, None),  # right-to-left script, no override
    ],
)
def test_control_and_bidi_characters_in_text_are_dead_letters(
    spark: SparkSession, changes: dict, expected: str | None
) -> None:
    assert reason_of(spark, event_bytes(**changes)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # size: 1100 bytes of padding alone exceeds the 1024-byte limit
        (event_bytes(padding="x" * 1100), "oversize"),
        (b'{"event_id": "\xff\xfe"}', "invalid_utf8"),
        (b'{"event_id": "e-1", ', "not_json"),
        (b"", "not_json"),
        (None, "not_json"),
        (b"[1, 2, 3]", "not_json_object"),
        (b'"a string"', "not_json_object"),
        (b"null", "not_json_object"),
        (event_bytes(drop=("price",)), "missing_field:price"),
        (event_bytes(user_id=None), "missing_field:user_id"),
        (event_bytes(event_id=""), "missing_field:event_id"),
        (event_bytes(drop=("revenue",)), "missing_field:revenue"),
        # first failing check wins: user_id comes before price in REQUIRED_FIELDS ...
        (event_bytes(drop=("price", "user_id")), "missing_field:user_id"),
        # ... and every missing field is reported before any wrong type
        (event_bytes(drop=("country",), quantity="many"), "missing_field:country"),
        (event_bytes(price="abc"), "wrong_type:price"),
        (event_bytes(price=True), "wrong_type:price"),
        (event_bytes(quantity=2.5), "wrong_type:quantity"),
        (event_bytes(quantity="x"), "wrong_type:quantity"),
        (event_bytes(timestamp="yesterday"), "wrong_type:timestamp"),
        (event_bytes(timestamp="2026-01-01 12:00:30"), "wrong_type:timestamp"),
        (event_bytes(timestamp="2026-01-01T12:00"), "wrong_type:timestamp"),
        (event_bytes(timestamp="2026-01-01T12:00:30.123456 UTC"), "wrong_type:timestamp"),
        (event_bytes(timestamp="2026-02-30T12:00:30Z"), "wrong_type:timestamp"),
        (event_bytes(timestamp=1767268830), "wrong_type:timestamp"),
        (event_bytes(category={"name": "Books"}), "wrong_type:category"),
        (event_bytes(revenue="lots"), "wrong_type:revenue"),
        (event_bytes(event_type="refund"), "unknown_event_type"),
        (event_bytes(event_type="page_view", price=-1), "negative_price"),
        (event_bytes(quantity=0, revenue=0), "non_positive_quantity"),
        (event_bytes(event_type="add_to_cart", quantity=0), "non_positive_quantity"),
        (event_bytes(quantity=-1, revenue=-12.5), "negative_quantity"),
        (event_bytes(event_type="page_view", quantity=-1), "negative_quantity"),
        (event_bytes(event_type="remove_from_cart", quantity=-2), "negative_quantity"),
        # 12.50 * 2 = 25.00; 25.02 is 0.02 off
        (event_bytes(revenue=25.02), "revenue_mismatch"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_records_get_their_reason(
    spark: SparkSession, value: bytes | None, expected: str
) -> None:
    assert reason_of(spark, value) == expected


@pytest.mark.parametrize(
    ("kafka_ts", "expected"),
    [
        # event 12:00:30; lag limit 3600 s, lead limit 600 s
        ("2026-01-01 13:00:30", None),  # exactly 3600 s behind: allowed
        ("2026-01-01 13:00:31", "absurd_timestamp"),  # 3601 s behind
        ("2026-01-01 11:50:30", None),  # exactly 600 s ahead: allowed
        ("2026-01-01 11:50:29", "absurd_timestamp"),  # 601 s ahead
    ],
)
def test_absurd_timestamp_bounds(spark: SparkSession, kafka_ts: str, expected: str | None) -> None:
    assert reason_of(spark, event_bytes(), kafka_ts) == expected


def test_valid_events_keeps_only_good_rows(spark: SparkSession) -> None:
    values = [event_bytes(), b"garbage", event_bytes(event_id="e-2", event_type="page_view")]
    good = valid_events(parse_events(raw_frame(spark, values), EVENTS))
    assert tuple(good.columns) == EVENT_COLUMNS
    assert sorted(r.event_id for r in good.collect()) == ["e-1", "e-2"]


def test_filtering_on_the_reason_parses_each_record_once(spark: SparkSession) -> None:
    """Regression: a dlq_reason filter pushed below the parsing projections inlined the
    parsed document into every check (the JSON parsed ~70 times per row), and foreachBatch's
    constraint propagation over that filter ran the driver out of heap."""
    parsed = parse_events(raw_frame(spark, [event_bytes()]), EVENTS)
    for frame in (valid_events(parsed), dead_letters(parsed)):
        plan = frame._jdf.queryExecution().optimizedPlan().toString()
        assert plan.count("parseJson") == 1


# ---------------------------------------------------------------- dead_letters


def test_dead_letters_carry_raw_bytes_and_source(spark: SparkSession) -> None:
    good = event_bytes()
    not_json = b"hello"
    bad_utf8 = b'{"event_id": "\xff"}'
    parsed = parse_events(raw_frame(spark, [good, not_json, bad_utf8]), EVENTS)
    dlq = dead_letters(parsed)
    assert tuple(dlq.columns) == ("key", "value", *QUARANTINE_COLUMNS)

    rows = {r.source_offset: r for r in dlq.collect()}
    assert sorted(rows) == [1, 2]  # the good record (offset 0) is not a dead letter

    first = rows[1]
    assert first.key == b"ecommerce-events|1|1"
    assert (first.reason, first.reason_code) == ("not_json", "not_json")
    assert (first.source_topic, first.source_partition) == (TOPIC, 1)
    assert first.raw_key == b"k1"
    assert first.raw_value == not_json
    assert first.raw_value_text == "hello"
    assert first.raw_value_bytes == 5
    message = json.loads(first.value)
    assert message["reason"] == "not_json"
    assert message["source_topic"] == TOPIC
    assert message["source_partition"] == 1
    assert message["source_offset"] == 1
    assert message["kafka_timestamp"] == "2026-01-01T12:00:31.000Z"
    assert base64.b64decode(message["raw_value_base64"], validate=True) == not_json
    assert message["raw_value"] == "hello"
    assert message["raw_value_truncated"] is False

    second = rows[2]
    assert second.reason == "invalid_utf8"
    assert second.raw_value == bad_utf8
    assert second.raw_value_text is None
    message = json.loads(second.value)
    assert "raw_value" not in message  # not valid UTF-8: base64 only
    assert base64.b64decode(message["raw_value_base64"], validate=True) == bad_utf8


def test_dead_letter_message_truncates_long_raw_values(spark: SparkSession) -> None:
    # Oversize for the 1024-byte limit, so the message may carry only the first 1024 bytes.
    big = b'{"pad": "' + b"y" * 2000 + b'"}'  # 2011 bytes
    parsed = parse_events(raw_frame(spark, [big]), EVENTS)
    row = dead_letters(parsed, max_raw_bytes=1024).collect()[0]
    assert row.reason == "oversize"
    assert row.raw_value == big  # the quarantine table keeps every byte
    assert row.raw_value_bytes == 2011
    message = json.loads(row.value)
    assert message["raw_value_truncated"] is True
    assert message["raw_value_bytes"] == 2011
    assert "raw_value" not in message
    # base64 of 1024 bytes is 4 * ceil(1024 / 3) = 1368 characters on one line
    assert len(message["raw_value_base64"]) == 1368
    assert base64.b64decode(message["raw_value_base64"], validate=True) == big[:1024]


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
    assert tuple(result.columns) == REVENUE_COLUMNS
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
    deduped = deduplicate(events_frame(spark, rows), ANALYTICS.watermark_seconds)
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
    result = revenue_by_category(deduplicate(typed, ANALYTICS.watermark_seconds), ANALYTICS)
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
