"""Unit tests for spark_jobs.validation on small hand-built Kafka records: malformed
records, dead letters and control records.

Every expected value below is worked out by hand in the comments, never by calling the
code under test.  Timestamps are compared as strings cast in the session's UTC zone, so the
tests do not depend on the time zone of the machine running them.
"""

from __future__ import annotations

import base64
import json

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from include.analytics import DEAD_LETTERS
from spark_jobs.validation import (
    EVENT_COLUMNS,
    dead_letters,
    parse_events,
    timed_records,
    valid_events,
)
from tests.unit.records import (
    EVENTS,
    KAFKA_TS,
    RAW_SCHEMA,
    TOPIC,
    Reasons,
    event_bytes,
    raw_frame,
)

UNSAFE_TEXT = [
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
]

MALFORMED = [
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
]

# event 12:00:30; lag limit 3600 s, lead limit 600 s
KAFKA_TIMES = [
    ("2026-01-01 13:00:30", None),  # exactly 3600 s behind: allowed
    ("2026-01-01 13:00:31", "timestamp_too_old:3600s"),  # 3601 s behind
    ("2026-01-01 11:50:30", None),  # exactly 600 s ahead: allowed
    ("2026-01-01 11:50:29", "timestamp_in_future:600s"),  # 601 s ahead
]


@pytest.fixture(scope="module")
def reason(spark: SparkSession) -> Reasons:
    """Every case of this module judged in one query (see Reasons)."""
    return Reasons(
        spark,
        [(event_bytes(**changes), KAFKA_TS) for changes, _ in UNSAFE_TEXT]
        + [(value, KAFKA_TS) for value, _ in MALFORMED]
        + [(event_bytes(), kafka_ts) for kafka_ts, _ in KAFKA_TIMES],
    )


@pytest.mark.parametrize(("changes", "expected"), UNSAFE_TEXT)
def test_control_and_bidi_characters_in_text_are_dead_letters(
    reason: Reasons, changes: dict, expected: str | None
) -> None:
    assert reason(event_bytes(**changes)) == expected


@pytest.mark.parametrize(
    ("value", "expected"), MALFORMED, ids=lambda v: v if isinstance(v, str) else None
)
def test_malformed_records_get_their_reason(
    reason: Reasons, value: bytes | None, expected: str
) -> None:
    assert reason(value) == expected


@pytest.mark.parametrize(("kafka_ts", "expected"), KAFKA_TIMES)
def test_timestamp_bounds_name_the_bound_crossed(
    reason: Reasons, kafka_ts: str, expected: str | None
) -> None:
    assert reason(event_bytes(), kafka_ts) == expected


def test_valid_events_keeps_only_good_rows(spark: SparkSession) -> None:
    values = [event_bytes(), b"garbage", event_bytes(event_id="e-2", event_type="page_view")]
    good = valid_events(parse_events(raw_frame(spark, values), EVENTS))
    assert tuple(good.columns) == EVENT_COLUMNS
    assert sorted(r.event_id for r in good.collect()) == ["e-1", "e-2"]


def test_a_control_record_moves_event_time_and_is_neither_event_nor_dead_letter(
    spark: SparkSession,
) -> None:
    # The idle rule's record (include.streaming.idle_close): key \x00ecom.control, its event
    # time only.
    control = json.dumps(
        {
            "control": "advance_event_time",
            "event_time": "2026-01-01T12:05:00.250000Z",
            "after": "2026-01-01T12:00:30.000000Z",
        }
    ).encode()
    rows = [
        (b"\x00ecom.control", control, TOPIC, 0, 0, KAFKA_TS),
        # Under the control key, anything else is judged as an event: not one here.
        (b"\x00ecom.control", b'{"control": "something else"}', TOPIC, 0, 1, KAFKA_TS),
        (b"k2", event_bytes(), TOPIC, 0, 2, KAFKA_TS),
    ]
    raw = spark.createDataFrame(rows, RAW_SCHEMA)
    parsed = parse_events(raw.withColumn("timestamp", F.col("timestamp").cast("timestamp")), EVENTS)
    got = {
        r.offset: (r.control, r.dlq_reason, r.event_time_utc)
        for r in parsed.select(
            "offset",
            "control",
            "dlq_reason",
            F.date_format("event_time", "yyyy-MM-dd HH:mm:ss.SSS").alias("event_time_utc"),
        ).collect()
    }
    assert got[0] == (True, None, "2026-01-01 12:05:00.250")
    assert got[1] == (False, "missing_field:event_id", None)
    assert got[2] == (False, None, "2026-01-01 12:00:30.000")
    assert [r.event_id for r in valid_events(parsed).collect()] == ["e-1"]
    assert [r.source_offset for r in dead_letters(parsed).collect()] == [1]
    timed = timed_records(parsed).collect()
    assert sorted((r.control, r.event_id) for r in timed) == [(False, "e-1"), (True, None)]


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
    assert tuple(dlq.columns) == ("key", "value", *DEAD_LETTERS.columns)

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
