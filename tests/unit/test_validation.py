"""Unit tests for spark_jobs.validation on small hand-built Kafka records: valid events.

Every expected value below is worked out by hand in the comments, never by calling the
code under test.  Timestamps are compared as strings cast in the session's UTC zone, so the
tests do not depend on the time zone of the machine running them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, IntegerType, StringType, TimestampType

from spark_jobs.validation import (
    parse_events,
)
from tests.unit.records import (
    EVENTS,
    KAFKA_TS,
    TOPIC,
    Reasons,
    event_bytes,
    raw_frame,
)

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


# price 12.50 * quantity 2 = 25.00; revenue is read to the cent (half up), and a difference
# up to 0.01 is float noise or a rounding shop, not a mismatch.
REVENUE_NOISE = [
    (25.0000000000001, None),
    (25.01, None),
    (24.99, None),
    (25.014999, None),  # reads as 25.01
    (25.015, "revenue_mismatch"),  # reads as 25.02
    (24.985, None),  # reads as 24.99: half up
    (24.984, "revenue_mismatch"),  # reads as 24.98
]

# "Z" offset, revenue within the 0.01 tolerance, quantity written as 2.0.
GENERATOR_STYLE = event_bytes(timestamp="2026-01-01T12:00:30Z", quantity=2.0, revenue=25.01)

NOT_COERCED = [
    ({"price": "12.50"}, "wrong_type:price"),
    ({"quantity": "2"}, "wrong_type:quantity"),
    ({"revenue": "25.00"}, "wrong_type:revenue"),
    ({"event_id": 123}, "wrong_type:event_id"),
    ({"category": 5}, "wrong_type:category"),
    ({"user_id": True}, "wrong_type:user_id"),
    ({"session_id": 1.5}, "wrong_type:session_id"),
]


@pytest.fixture(scope="module")
def reason(spark: SparkSession) -> Reasons:
    """Every single-record case of this module judged in one query (see Reasons)."""
    return Reasons(
        spark,
        [(event_bytes(revenue=revenue), KAFKA_TS) for revenue, _ in REVENUE_NOISE]
        + [(GENERATOR_STYLE, KAFKA_TS)]
        + [(event_bytes(**changes), KAFKA_TS) for changes, _ in NOT_COERCED],
    )


@pytest.mark.parametrize(("revenue", "expected"), REVENUE_NOISE)
def test_revenue_noise_within_the_tolerance_is_accepted(
    reason: Reasons, revenue: float, expected: str | None
) -> None:
    assert reason(event_bytes(revenue=revenue)) == expected


def test_the_tutorials_float_revenue_is_exact_to_the_cent(spark: SparkSession) -> None:
    # 1299.99 * 3 in floats is 3899.9700000000003: the event is valid, its revenue 3899.97.
    value = event_bytes(price=1299.99, quantity=3, revenue=1299.99 * 3)
    row = parse_events(raw_frame(spark, [value]), EVENTS).collect()[0]
    assert (row.dlq_reason, row.price, row.revenue) == (
        None,
        Decimal("1299.99"),
        Decimal("3899.97"),
    )


def test_generator_style_values_are_accepted(reason: Reasons) -> None:
    assert reason(GENERATOR_STYLE) is None


@pytest.mark.parametrize(
    ("changes", "expected"), NOT_COERCED, ids=lambda v: v if isinstance(v, str) else None
)
def test_types_are_checked_not_coerced(reason: Reasons, changes: dict, expected: str) -> None:
    assert reason(event_bytes(**changes)) == expected


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
