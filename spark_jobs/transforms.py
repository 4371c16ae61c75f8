"""Pure DataFrame transforms of the streaming pipeline (docs/DESIGN.md, sections 3 and 4).

Every function here takes DataFrames and returns a DataFrame: no reads, no writes, no
session creation, so the unit tests run them on small static frames and the streaming app
composes them on Kafka streams.  Everything is built from Spark SQL built-in functions
(variant parsing, ``try_*`` casts); there is no Python UDF, so no Python worker sits in
the hot path.

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

from collections.abc import Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampNTZType, TimestampType

from include.events import COUNTED_EVENT_TYPES, EVENT_TYPES, REQUIRED_FIELDS
from include.settings import AnalyticsSettings, EventSettings

PRICE_TYPE = "decimal(12,2)"
MONEY_TYPE = "decimal(18,2)"
# Conversion rates in percent, exact to 0.01 (100.00 at most).
RATE_TYPE = "decimal(5,2)"

# Output columns of valid events, in table order.
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "event_time",
    "user_id",
    "product_id",
    "product_name",
    "category",
    "price",
    "quantity",
    "session_id",
    "device_type",
    "country",
    "revenue",
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
# Flat dead-letter columns: the quarantine table's schema.
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "reason",
    "reason_code",
    "source_topic",
    "source_partition",
    "source_offset",
    "kafka_timestamp",
    "raw_key",
    "raw_value",
    "raw_value_text",
    "raw_value_bytes",
)

REVENUE_KEY_COLUMNS: tuple[str, ...] = ("category", "window_start")

NUMERIC_FIELDS = ("price", "quantity")
TIMESTAMP_FIELD = "timestamp"
STRING_FIELDS: tuple[str, ...] = tuple(
    f for f in REQUIRED_FIELDS if f not in (*NUMERIC_FIELDS, TIMESTAMP_FIELD)
)
PURCHASE = "purchase"

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
# Kafka record keys render timestamps this way (the same pattern to_json uses).
KEY_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
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
    (null for a valid event, else one reason code) and :data:`SOURCE_COLUMNS`.
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
        *[_node(f).alias(f"_n_{f}") for f in (*REQUIRED_FIELDS, "revenue")],
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
        F.col("_event_time").alias("event_time"),
        *[F.col(f"_s_{f}").alias(f) for f in ("user_id", "product_id", "product_name")],
        F.col("_s_category").alias("category"),
        F.col("_price").alias("price"),
        F.col("_quantity").alias("quantity"),
        *[F.col(f"_s_{f}").alias(f) for f in ("session_id", "device_type", "country")],
        F.when(is_purchase, F.col("_revenue")).cast(MONEY_TYPE).alias("revenue"),
        reason.alias("dlq_reason"),
        *SOURCE_COLUMNS,
    )
    # The one-row inline() is an optimizer barrier.  A filter on dlq_reason (valid_events,
    # dead_letters) would otherwise be pushed below the projections, with every reference
    # to the parsed document replaced by its definition: the JSON got parsed ~70 times per
    # row, and foreachBatch's constraint propagation over that filter exhausted the heap.
    # A filter on a generator's output stays above the generator.
    return staged.select(F.inline(F.array(output)))


def valid_events(parsed: DataFrame) -> DataFrame:
    """Rows of :func:`parse_events` that passed every check, event columns only."""
    return parsed.filter(F.col("dlq_reason").isNull()).select(*EVENT_COLUMNS)


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
    the raw value go into the message; the quarantine columns
    (:data:`QUARANTINE_COLUMNS`) always keep the full bytes.
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


def deduplicate(events: DataFrame, watermark_seconds: int) -> DataFrame:
    """Count each ``event_id`` once; sets the event-time watermark for what follows.

    Streaming: state per event_id lives until the watermark passes it, so a duplicate that
    arrives within ``watermark_seconds`` of event time is dropped.  Spark 4.0 refuses
    ``dropDuplicatesWithinWatermark`` on a static frame, so a batch frame gets a plain
    ``dropDuplicates`` (the watermark is a no-op there).
    """
    watermarked = events.withWatermark("event_time", f"{watermark_seconds} seconds")
    if events.isStreaming:
        return watermarked.dropDuplicatesWithinWatermark(["event_id"])
    return watermarked.dropDuplicates(["event_id"])


def _sliding_window(length_seconds: int, slide_seconds: int) -> Column:
    """Event-time windows [start, end) of the given length, one starting every slide."""
    return F.window("event_time", f"{length_seconds} seconds", f"{slide_seconds} seconds")


def revenue_by_category(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Purchases per sliding event-time window [start, end) and category.

    Columns: ``include.tables.REVENUE_COLUMNS``.  On a stream the input must already carry a
    watermark on ``event_time`` (see :func:`deduplicate`) so append mode can emit a window
    once it is closed; on a static frame every window is computed at once.
    """
    window = _sliding_window(analytics.revenue_window_seconds, analytics.revenue_slide_seconds)
    totals = (
        events.filter(F.col("event_type") == PURCHASE)
        .groupBy(window.alias("window"), F.col("category"))
        .agg(
            F.sum("revenue").alias("_total"),
            F.count(F.lit(1)).alias("purchase_count"),
        )
    )
    return totals.select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        F.col("category"),
        F.col("_total").cast(MONEY_TYPE).alias("total_revenue"),
        F.col("purchase_count"),
        # round() on a decimal is HALF_UP, the way a shop rounds (include.events.money).
        F.round(F.col("_total") / F.col("purchase_count"), 2)
        .cast(MONEY_TYPE)
        .alias("avg_order_value"),
    )


def to_kafka_records(df: DataFrame, key_columns: Sequence[str]) -> DataFrame:
    """``key``/``value`` (binary) records for the Kafka sink.

    The key joins ``key_columns`` with ``|`` (timestamps as ISO-8601, e.g.
    ``Books|2026-01-01T12:00:00.000Z`` in a UTC session), so a replayed row gets the same
    key and consumers can dedupe; the value is the whole row as JSON.
    """
    return df.select(*kafka_key_value(df, key_columns))


def kafka_key_value(df: DataFrame, key_columns: Sequence[str]) -> list[Column]:
    """The ``key`` and ``value`` columns of :func:`to_kafka_records`."""
    types = dict((field.name, field.dataType) for field in df.schema.fields)
    parts = []
    for name in key_columns:
        column = F.col(name)
        if isinstance(types[name], (TimestampType, TimestampNTZType)):
            rendered = F.date_format(column, KEY_TIMESTAMP_FORMAT)
        else:
            rendered = column.cast("string")
        # concat_ws skips nulls, which would make "a|null" and "null|a" collide.
        parts.append(F.coalesce(rendered, F.lit("")))
    return [
        F.concat_ws("|", *parts).cast("binary").alias("key"),
        F.to_json(F.struct(*[F.col(c) for c in df.columns])).cast("binary").alias("value"),
    ]


def high_value_users(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Per sliding window and user: spend, purchases and products bought; big spenders only.

    Columns: ``include.tables.HIGH_VALUE_USER_COLUMNS``.  ``products_purchased`` is the
    sorted set of product names (what the tutorial reports), ``product_ids_purchased`` that
    of their ids, so a row is the same whatever order events arrived in.  Only
    rows with ``total_spent`` above ``analytics.high_value_threshold`` are kept: filtering
    the finished aggregate keeps the sum exact.
    """
    window = _sliding_window(
        analytics.high_value_window_seconds, analytics.high_value_slide_seconds
    )
    spend = (
        events.filter(F.col("event_type") == PURCHASE)
        .groupBy(window.alias("window"), F.col("user_id"))
        .agg(
            F.sum("revenue").alias("_total"),
            F.count(F.lit(1)).alias("purchase_count"),
            F.array_sort(F.collect_set("product_name")).alias("products_purchased"),
            F.array_sort(F.collect_set("product_id")).alias("product_ids_purchased"),
        )
    )
    return spend.filter(F.col("_total") > F.lit(analytics.high_value_threshold)).select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        F.col("user_id"),
        F.col("_total").cast(MONEY_TYPE).alias("total_spent"),
        F.col("purchase_count"),
        F.col("products_purchased"),
        F.col("product_ids_purchased"),
    )


def _rate(numerator: str, denominator: str) -> Column:
    """numerator / denominator * 100 in exact decimals, rounded half-up to 0.01; null on 0."""
    exact = (
        F.col(numerator).cast("decimal(20,0)")
        * F.lit(100)
        / F.col(denominator).cast("decimal(20,0)")
    )
    return F.when(F.col(denominator) > 0, F.round(exact, 2)).cast(RATE_TYPE)


def conversion_funnel(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """EXACT distinct users per sliding window who viewed, added to cart and purchased.

    Spark refuses ``countDistinct`` on a stream and ``approx_count_distinct`` is not exact,
    so this is two chained aggregations: first one row per (window, user) with flags for
    what that user did in the window (distinct by construction), then per window the sum of
    those flags.  In append mode both emit once the watermark passes the window's end.
    Columns: ``include.tables.FUNNEL_COLUMNS``.
    """
    window = _sliding_window(analytics.funnel_window_seconds, analytics.funnel_slide_seconds)

    def did(event_type: str) -> Column:
        return F.max(F.when(F.col("event_type") == event_type, 1).otherwise(0))

    per_user = events.groupBy(window.alias("window"), F.col("user_id")).agg(
        did("page_view").alias("viewed"),
        did("add_to_cart").alias("carted"),
        did(PURCHASE).alias("purchased"),
    )
    per_window = per_user.groupBy(F.col("window")).agg(
        F.sum("viewed").alias("unique_visitors"),
        F.sum("carted").alias("cart_users"),
        F.sum("purchased").alias("purchasers"),
    )
    return per_window.select(
        F.col("window.start").alias("window_start"),
        F.col("window.end").alias("window_end"),
        F.col("unique_visitors"),
        F.col("cart_users"),
        F.col("purchasers"),
        _rate("cart_users", "unique_visitors").alias("cart_conversion_rate"),
        _rate("purchasers", "cart_users").alias("purchase_conversion_rate"),
    )


def _seconds_between(start: str, end: str) -> Column:
    """Elapsed seconds as a double, exact to the microsecond: casting each timestamp to
    whole seconds first would be off by up to a second (0.9 s after a click reads 0)."""
    return (F.unix_micros(F.col(end)) - F.unix_micros(F.col(start))) / F.lit(1_000_000.0)


def user_sessions(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Per user, activity split into sessions by ``session_gap_seconds`` without events.

    ``session_window`` merges each event's span with the spans it overlaps *or touches*, so
    with the full gap two events exactly one gap apart would share a session.  The span is
    one microsecond (Spark's timestamp unit) shorter than the gap: a full gap of silence
    closes the session, anything shorter keeps it open.  ``session_end`` is the last
    event (not the window's end), ``unique_products`` the distinct products viewed: a
    collected set, since ``countDistinct`` is refused on streams.
    Columns: ``include.tables.SESSION_COLUMNS``.
    """
    span = f"{analytics.session_gap_seconds * 1_000_000 - 1} microseconds"
    session = F.session_window("event_time", span)
    sessions = events.groupBy(session.alias("session"), F.col("user_id")).agg(
        F.min("event_time").alias("session_start"),
        F.max("event_time").alias("session_end"),
        F.count(F.lit(1)).alias("event_count"),
        F.sum(F.when(F.col("event_type") == PURCHASE, F.col("revenue"))).alias("_revenue"),
        F.collect_set(F.when(F.col("event_type") == "page_view", F.col("product_id"))).alias(
            "_viewed"
        ),
    )
    return sessions.select(
        F.col("user_id"),
        F.col("session_start"),
        F.col("session_end"),
        _seconds_between("session_start", "session_end").alias("duration_seconds"),
        F.col("event_count"),
        F.coalesce(F.col("_revenue"), F.lit(0)).cast(MONEY_TYPE).alias("total_revenue"),
        F.size("_viewed").cast("long").alias("unique_products"),
    )


def click_to_purchase(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """Page views joined to a later purchase of the same user and product.

    Takes valid events *before* de-duplication and de-duplicates each side after its
    filter: a join reads its input twice, and de-duplicating first would keep every event
    id in state twice (and count each late event on both sides).
    Condition: click_time < purchase_time <= click_time + ``attribution_seconds``.  The time
    range, with the watermark both sides carry, lets Spark drop join state once no future
    event can match.  Every (view, purchase) pair is a row, so a purchase after three views
    of the product gives three rows.  Columns: ``include.tables.CLICK_TO_PURCHASE_COLUMNS``.
    """

    def only(event_type: str) -> DataFrame:
        typed = events.filter(F.col("event_type") == event_type)
        return deduplicate(typed, analytics.watermark_seconds)

    clicks = only("page_view").select(
        F.col("event_id").alias("click_event_id"),
        F.col("user_id").alias("click_user_id"),
        F.col("product_id").alias("click_product_id"),
        F.col("event_time").alias("click_time"),
        F.col("device_type"),
    )
    purchases = only(PURCHASE).select(
        F.col("event_id").alias("purchase_event_id"),
        F.col("user_id").alias("purchase_user_id"),
        F.col("product_id").alias("purchase_product_id"),
        F.col("event_time").alias("purchase_time"),
        F.col("revenue"),
    )
    window = F.expr(f"INTERVAL {analytics.attribution_seconds} SECONDS")
    joined = clicks.join(
        purchases,
        (F.col("click_user_id") == F.col("purchase_user_id"))
        & (F.col("click_product_id") == F.col("purchase_product_id"))
        & (F.col("purchase_time") > F.col("click_time"))
        & (F.col("purchase_time") <= F.col("click_time") + window),
        "inner",
    )
    return joined.select(
        F.col("click_user_id").alias("user_id"),
        F.col("click_product_id").alias("product_id"),
        F.col("click_event_id"),
        F.col("purchase_event_id"),
        F.col("click_time"),
        F.col("purchase_time"),
        _seconds_between("click_time", "purchase_time").alias("time_to_purchase_seconds"),
        F.col("device_type"),
        F.col("revenue").cast(MONEY_TYPE).alias("revenue"),
    )
