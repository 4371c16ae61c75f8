"""Kafka records -> typed events or dead letters: the data contract, enforced.

Pure DataFrame functions like :mod:`spark_jobs.transforms` (no I/O, no session creation,
Spark SQL built-ins only: no Python worker sits in the hot path).  :func:`parse_events`
parses and checks every record once; :func:`valid_events` and :func:`dead_letters` are its
two outcomes.

Validation gives each bad record exactly one reason, the first failing check in this order
(codes are stable; ``<field>`` names the offending field):

``oversize``, ``invalid_utf8``, ``not_json``, ``not_json_object``,
``missing_field:<field>``, ``wrong_type:<field>``, ``unsafe_text:<field>``,
``unknown_event_type``,
``negative_price``, ``negative_quantity``, ``non_positive_quantity``, ``revenue_mismatch``,
``absurd_timestamp``.

A ``timestamp`` without an offset is the wall-clock time of ``[events] naive_timezone``
(the tutorial's producer writes ``datetime.now().isoformat()``).  ``quantity`` may be 0 on
a page view or a removal from the cart (the tutorial sends 0 there), never below 0, and at
least 1 on an add to cart or a purchase.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from include.contract import (
    COUNTED_EVENT_TYPES,
    EVENT_TYPES,
    OPTIONAL_FIELDS,
    PURCHASE,
    REQUIRED_FIELDS,
)
from include.settings.sections import EventSettings
from include.streaming.idle_close import CONTROL_KEY, CONTROL_KIND

PRICE_TYPE = "decimal(12,2)"
MONEY_TYPE = "decimal(18,2)"
TIMESTAMP_FIELD = "timestamp"

# Output columns of valid events, in table order: the event's fields, with the parsed
# event time in place of the raw timestamp text.
EVENT_COLUMNS: tuple[str, ...] = tuple(
    "event_time" if f == TIMESTAMP_FIELD else f for f in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)
)
# Kafka coordinates and raw bytes carried next to the parsed event for the dead-letter path.
SOURCE_COLUMNS: tuple[str, ...] = (
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "key",
    "value",
)

NUMERIC_FIELDS = ("price", "quantity")
STRING_FIELDS: tuple[str, ...] = tuple(
    f for f in REQUIRED_FIELDS if f not in (*NUMERIC_FIELDS, TIMESTAMP_FIELD)
)

# ISO-8601 date-time, fraction and offset optional.  A time without an offset is read in
# the configured zone (EventSettings.naive_timezone), never in the Spark session's or the
# host's: the same event must land in the same window on every host.
ISO_TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)?$"
ZONE_SUFFIX_PATTERN = r"(Z|[+-]\d{2}(:?\d{2})?)$"
# What schema_of_variant calls a JSON number (integers, decimals, and exponents as doubles).
JSON_NUMBER_KINDS = r"^(TINYINT|SMALLINT|INT|BIGINT|DECIMAL|FLOAT|DOUBLE)\b"
# Control characters and the bidirectional controls that reorder text on screen (a
# right-to-left override makes "Books\u202etxt.exe" look like another name): no text field,
# least of all one that becomes a table key or a Kafka key, may carry them.
UNSAFE_TEXT_PATTERN = r"[\p{Cc}\x{061C}\x{200E}\x{200F}\x{202A}-\x{202E}\x{2066}-\x{2069}]"
REVENUE_TOLERANCE = "0.01"
# Default cap on raw bytes copied into one dead-letter Kafka message: an oversize record
# copied whole (plus its base64) would exceed the broker's message size and stop the query.
DEFAULT_DLQ_RAW_BYTES = 65_536

# Reason codes.
OVERSIZE = "oversize"
INVALID_UTF8 = "invalid_utf8"
NOT_JSON = "not_json"
NOT_JSON_OBJECT = "not_json_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
UNSAFE_TEXT = "unsafe_text"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
NEGATIVE_PRICE = "negative_price"
NEGATIVE_QUANTITY = "negative_quantity"
NON_POSITIVE_QUANTITY = "non_positive_quantity"
REVENUE_MISMATCH = "revenue_mismatch"
ABSURD_TIMESTAMP = "absurd_timestamp"


def _node(name: str) -> Column:
    """The JSON value of a top-level field as a variant (SQL null when absent)."""
    return F.variant_get(F.col("_doc"), f"$.{name}", "variant")


def _get(name: str, type_: str) -> Column:
    """The field cast to ``type_``, or null when absent, JSON null or not castable."""
    return F.try_variant_get(F.col("_doc"), f"$.{name}", type_)


def _absent(name: str) -> Column:
    return F.col(f"_n_{name}").isNull() | F.is_variant_null(F.col(f"_n_{name}"))


def _kind_is(name: str, pattern: str) -> Column:
    return F.schema_of_variant(F.col(f"_n_{name}")).rlike(pattern)


def _event_time(text: Column, naive_zone: str) -> Column:
    """The event time of an ISO-8601 text, null when it is not one.

    A text with an offset is that instant.  A text without one is read as UTC ("Z"
    appended, so the Spark session's zone plays no part) and then moved from
    ``naive_zone``'s wall clock to UTC; in a daylight-saving fold the earlier offset wins.
    """
    has_zone = text.rlike(ZONE_SUFFIX_PATTERN)
    as_utc = F.when(has_zone, text).otherwise(F.concat(text, F.lit("Z"))).try_cast("timestamp")
    instant = F.when(has_zone, as_utc).otherwise(F.to_utc_timestamp(as_utc, naive_zone))
    return F.when(text.rlike(ISO_TIMESTAMP_PATTERN), instant)


def parse_events(raw: DataFrame, events: EventSettings) -> DataFrame:
    """Parse and validate Kafka records: one output row per input record.

    ``raw`` has the Kafka source columns (key, value, topic, partition, offset, timestamp).
    The result has :data:`EVENT_COLUMNS` (typed; meaningful only when valid), ``dlq_reason``
    (null for a valid event or a control record, else one reason code), ``control`` (a
    control record of include.streaming.idle_close: its ``event_time`` only) and
    :data:`SOURCE_COLUMNS`.
    """
    max_bytes = events.max_event_bytes
    text = F.col("value").cast("string")

    staged = raw.select(
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key"),
        F.col("value"),
        # length() of a binary counts bytes, which is what the size limit is about.
        F.length("value").alias("_size"),
        F.is_valid_utf8(text).alias("_utf8"),
    )
    # Parse only what passed the cheap checks: an oversize value is not worth parsing.
    staged = staged.withColumn(
        "_doc",
        F.when((F.col("_size") <= max_bytes) & F.col("_utf8"), F.try_parse_json(text)),
    )
    staged = staged.select(
        "*",
        *[_node(f).alias(f"_n_{f}") for f in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)],
        *[_get(f, "string").alias(f"_s_{f}") for f in (*STRING_FIELDS, TIMESTAMP_FIELD)],
        _get("price", PRICE_TYPE).alias("_price"),
        _get("quantity", "int").alias("_quantity"),
        # try_variant_get truncates 2.5 to the int 2: the exact value catches fractions.
        _get("quantity", "decimal(38,9)").alias("_quantity_exact"),
        _get("revenue", MONEY_TYPE).alias("_revenue"),
    )
    staged = staged.withColumn(
        "_event_time", _event_time(F.col(f"_s_{TIMESTAMP_FIELD}"), events.naive_timezone)
    )
    # A control record (include.streaming.idle_close) carries only the event time it moves the clock
    # to; it is never an event and never a dead letter.  Anything else under its key is
    # judged as an event (and fails as one).
    control_time = F.when(
        (F.col("key") == F.lit(CONTROL_KEY)) & (_get("control", "string") == CONTROL_KIND),
        _event_time(_get("event_time", "string"), "UTC"),
    )
    staged = staged.withColumn("_control_time", control_time)
    is_control = F.col("_control_time").isNotNull()

    is_purchase = F.col("_s_event_type") == PURCHASE

    def missing(name: str) -> Column:
        if name in STRING_FIELDS or name == TIMESTAMP_FIELD:
            # An empty id or name is as useless downstream as an absent one.
            return _absent(name) | (F.trim(F.col(f"_s_{name}")) == "")
        return _absent(name)

    # The contract is typed JSON: text where a number belongs (or a number where text
    # belongs) is a wrong type, not something to coerce.  Numeric strings pass only when
    # [events] accept_numeric_strings says so.
    number = JSON_NUMBER_KINDS + (r"|^STRING$" if events.accept_numeric_strings else "")

    def not_text(name: str) -> Column:
        return ~_kind_is(name, r"^STRING$")

    def not_number(name: str) -> Column:
        return ~_kind_is(name, number)

    wrong_type: dict[str, Column] = {
        **{f: not_text(f) for f in STRING_FIELDS},
        TIMESTAMP_FIELD: not_text(TIMESTAMP_FIELD) | F.col("_event_time").isNull(),
        "price": not_number("price") | F.col("_price").isNull(),
        "quantity": not_number("quantity")
        | F.col("_quantity").isNull()
        | (F.col("_quantity_exact") != F.col("_quantity")),
        "revenue": not_number("revenue") | F.col("_revenue").isNull(),
    }

    lag_us = events.max_event_lag_seconds * 1_000_000
    lead_us = events.max_event_lead_seconds * 1_000_000
    event_us = F.unix_micros(F.col("_event_time"))
    kafka_us = F.unix_micros(F.col("kafka_timestamp"))

    # Ordered: the first true condition names the record's reason.  A null condition (for
    # instance a missing Kafka timestamp) counts as passing, like SQL's CASE does.
    checks: list[tuple[Column, str]] = [
        (F.col("_size") > max_bytes, OVERSIZE),
        (~F.col("_utf8"), INVALID_UTF8),
        (F.col("_doc").isNull(), NOT_JSON),
        # try_parse_json accepts any JSON value; an event must be an object.
        (~text.rlike(r"^\s*\{"), NOT_JSON_OBJECT),
        *[(missing(f), f"{MISSING_FIELD}:{f}") for f in REQUIRED_FIELDS],
        (is_purchase & missing("revenue"), f"{MISSING_FIELD}:revenue"),
        *[(wrong_type[f], f"{WRONG_TYPE}:{f}") for f in REQUIRED_FIELDS],
        (is_purchase & wrong_type["revenue"], f"{WRONG_TYPE}:revenue"),
        *[
            (F.col(f"_s_{f}").rlike(UNSAFE_TEXT_PATTERN), f"{UNSAFE_TEXT}:{f}")
            for f in STRING_FIELDS
        ],
        (~F.col("_s_event_type").isin(*EVENT_TYPES), UNKNOWN_EVENT_TYPE),
        (F.col("_price") < 0, NEGATIVE_PRICE),
        (F.col("_quantity") < 0, NEGATIVE_QUANTITY),
        (
            F.col("_s_event_type").isin(*COUNTED_EVENT_TYPES) & (F.col("_quantity") <= 0),
            NON_POSITIVE_QUANTITY,
        ),
        (
            is_purchase
            & (
                F.abs(F.col("_revenue") - F.col("_price") * F.col("_quantity"))
                > F.lit(REVENUE_TOLERANCE).cast(MONEY_TYPE)
            ),
            REVENUE_MISMATCH,
        ),
        # Microsecond arithmetic on longs cannot overflow the way timestamp +/- interval can.
        ((event_us < kafka_us - lag_us) | (event_us > kafka_us + lead_us), ABSURD_TIMESTAMP),
    ]
    first, *rest = checks
    reason = reduce(
        lambda acc, check: acc.when(check[0], F.lit(check[1])),
        rest,
        F.when(first[0], F.lit(first[1])),
    )

    output = F.struct(
        *[F.col(f"_s_{f}").alias(f) for f in ("event_id", "event_type")],
        F.coalesce(F.col("_control_time"), F.col("_event_time")).alias("event_time"),
        *[F.col(f"_s_{f}").alias(f) for f in ("user_id", "product_id", "product_name")],
        F.col("_s_category").alias("category"),
        F.col("_price").alias("price"),
        F.col("_quantity").alias("quantity"),
        *[F.col(f"_s_{f}").alias(f) for f in ("session_id", "device_type", "country")],
        F.when(is_purchase, F.col("_revenue")).cast(MONEY_TYPE).alias("revenue"),
        F.when(~is_control, reason).alias("dlq_reason"),
        is_control.alias("control"),
        *SOURCE_COLUMNS,
    )
    # The one-row inline() is an optimizer barrier.  A filter on dlq_reason (valid_events,
    # dead_letters) would otherwise be pushed below the projections, with every reference
    # to the parsed document replaced by its definition: the JSON got parsed ~70 times per
    # row, and foreachBatch's constraint propagation over that filter exhausted the heap.
    # A filter on a generator's output stays above the generator.
    return staged.select(F.inline(F.array(output)))


def valid_events(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_events` that passed every check, event columns only (control
    records are not events)."""
    return parsed.filter(F.col("dlq_reason").isNull() & ~F.col("control")).select(*EVENT_COLUMNS)


def timed_records(parsed: DataFrame) -> DataFrame:
    """Valid events and control records: what moves event time.  :data:`EVENT_COLUMNS` plus
    ``control`` (true for a control record, whose only meaningful column is ``event_time``).
    The streaming pipeline sets its watermark on these and then drops the control records."""
    return parsed.filter(F.col("dlq_reason").isNull()).select(*EVENT_COLUMNS, "control")


def _base64(column: Column) -> Column:
    """Single-line base64: Spark 4.0's base64() wraps at 76 characters with CRLF (MIME style,
    spark.sql.chunkBase64String.enabled), which strict decoders reject."""
    return F.regexp_replace(F.base64(column), r"[\r\n]", "")


def dead_letters(parsed: DataFrame, *, max_raw_bytes: int = DEFAULT_DLQ_RAW_BYTES) -> DataFrame:
    """Rows of :func:`parse_events` that failed a check, ready for both dead-letter sinks.

    ``key``/``value`` (binary) are the Kafka record: the key is
    ``"<topic>|<partition>|<offset>"`` (deterministic, so consumers can dedupe a replay) and
    the value a JSON object with reason, source_topic, source_partition, source_offset,
    kafka_timestamp, raw_value_base64, raw_value (text, only when valid UTF-8),
    raw_value_bytes, raw_value_truncated and raw_key_base64.  At most ``max_raw_bytes`` of
    the raw value go into the message; the table's columns
    (``include.analytics.DEAD_LETTERS``) always keep the full bytes.
    """
    bad = parsed.filter(F.col("dlq_reason").isNotNull())
    utf8 = F.is_valid_utf8(F.col("value").cast("string"))
    raw_bytes = F.length("value")
    truncated = raw_bytes > max_raw_bytes
    shown = F.when(truncated, F.substring("value", 1, max_raw_bytes)).otherwise(F.col("value"))

    message = F.struct(
        F.col("dlq_reason").alias("reason"),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.col("kafka_timestamp"),
        _base64(shown).alias("raw_value_base64"),
        # A cut could split a multi-byte character, so truncated values go as base64 only.
        F.when(utf8 & ~truncated, F.col("value").cast("string")).alias("raw_value"),
        raw_bytes.alias("raw_value_bytes"),
        F.coalesce(truncated, F.lit(False)).alias("raw_value_truncated"),
        _base64(F.col("key")).alias("raw_key_base64"),
    )
    return bad.select(
        F.concat_ws("|", "topic", "partition", "offset").cast("binary").alias("key"),
        F.to_json(message).cast("binary").alias("value"),
        F.col("dlq_reason").alias("reason"),
        F.substring_index("dlq_reason", ":", 1).alias("reason_code"),
        F.col("topic").alias("source_topic"),
        F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"),
        F.col("kafka_timestamp"),
        F.col("key").alias("raw_key"),
        F.col("value").alias("raw_value"),
        F.when(utf8, F.col("value").cast("string")).alias("raw_value_text"),
        raw_bytes.alias("raw_value_bytes"),
    )
