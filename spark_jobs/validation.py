"""Kafka records -> typed events or dead letters: the data contract, enforced.

Pure DataFrame functions like :mod:`spark_jobs.transforms` (no I/O, no session creation,
Spark SQL built-ins and the JVM Avro decoder of :mod:`spark_jobs.avro` only: no Python worker
sits in the hot path).  :func:`parse_events` parses and checks every record once;
:func:`valid_events` and :func:`dead_letters` are its two outcomes.

A record is JSON text or Avro in the Confluent wire format (first byte 0, then the schema
id): the first byte tells them apart, on the same topic.  An Avro record is read with the
schema it was written with (from the schema registry, by id) resolved to the contract's
newest version (include/schemas/ecommerce_event.avsc), rendered as the JSON of that version
and judged by the same checks from there on.  An Avro record the decoder cannot read is a
dead letter with the decoder's reason; while the registry does not answer, the decoder waits
(the batch with it, nothing committed) rather than judge a record it cannot read.

Validation gives each bad record exactly one reason, the first failing check in this order
(codes are stable; ``<field>`` names the offending field):

``oversize``, ``invalid_utf8``, ``not_json``, ``not_json_object``,
``missing_field:<field>``, ``wrong_type:<field>``, ``unsafe_text:<field>``,
``unknown_event_type``,
``negative_price``, ``negative_quantity``, ``non_positive_quantity``, ``revenue_mismatch``,
``timestamp_too_old:<bound>s``, ``timestamp_in_future:<bound>s``; for an Avro record first
``avro_no_registry``, ``avro_bad_framing``, ``avro_unknown_schema_id:<id>``,
``avro_unreadable_schema:<id>``, ``avro_corrupt_body:<id>``.  The timestamp bounds are
``[events] max_event_lag_seconds`` behind and ``max_event_lead_seconds`` ahead of the Kafka
record's time, and the reason carries the bound that was crossed.

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
from include.event_schema import fields, schema_text
from include.settings.sections import EventSettings
from include.streaming.idle_close import CONTROL_KEY, CONTROL_KIND
from spark_jobs.avro import avro_to_json, is_confluent_avro

# The type rules come from the schema's fields (include.event_schema): a "string" field must
# be JSON text, "int" a whole JSON number, "decimal" a JSON number that fits its precision and
# scale, "timestamp" ISO-8601 text.
SPECS = {spec.name: spec for spec in fields()}
PRICE_TYPE = SPECS["price"].spark_type
MONEY_TYPE = SPECS["revenue"].spark_type
TIMESTAMP_FIELD = next(spec.name for spec in fields() if spec.kind == "timestamp")

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

TEXT_FIELDS: tuple[str, ...] = tuple(spec.name for spec in fields() if spec.kind == "string")
STRING_FIELDS: tuple[str, ...] = tuple(f for f in REQUIRED_FIELDS if f in TEXT_FIELDS)
# Optional fields checked only when present (revenue has a rule of its own: purchases).
CHECKED_OPTIONAL: tuple[str, ...] = tuple(f for f in OPTIONAL_FIELDS if f != "revenue")

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
TIMESTAMP_TOO_OLD = "timestamp_too_old"
TIMESTAMP_IN_FUTURE = "timestamp_in_future"
AVRO_NO_REGISTRY = "avro_no_registry"


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


def _typed(name: str) -> list[Column]:
    """The staged columns of a field: its text (``_s_``), or its typed value (``_t_``, and
    for an int the exact value ``_x_``: try_variant_get truncates 2.5 to the int 2)."""
    spec = SPECS[name]
    if spec.kind in ("string", "timestamp"):
        return [_get(name, "string").alias(f"_s_{name}")]
    typed = [_get(name, spec.spark_type).alias(f"_t_{name}")]
    if spec.kind == "int":
        typed.append(_get(name, "decimal(38,9)").alias(f"_x_{name}"))
    return typed


def _output(name: str, is_purchase: Column) -> Column:
    """A valid event's column for a field, in its table type."""
    spec = SPECS[name]
    if spec.kind == "timestamp":
        # A control record's event time is the time it moves the clock to.
        return F.coalesce(F.col("_control_time"), F.col("_event_time"))
    if name == "revenue":
        return F.when(is_purchase, F.col("_t_revenue")).cast(MONEY_TYPE)
    return F.col(f"_s_{name}" if spec.kind == "string" else f"_t_{name}")


def parse_events(
    raw: DataFrame, events: EventSettings, registry_url: str | None = None
) -> DataFrame:
    """Parse and validate Kafka records: one output row per input record.

    ``raw`` has the Kafka source columns (key, value, topic, partition, offset, timestamp).
    The result has :data:`EVENT_COLUMNS` (typed; meaningful only when valid), ``dlq_reason``
    (null for a valid event or a control record, else one reason code), ``control`` (a
    control record of include.streaming.idle_close: its ``event_time`` only) and
    :data:`SOURCE_COLUMNS`.  ``registry_url`` is the schema registry's Confluent-compatible
    API root, which Avro records are decoded with (the session must have the decoder:
    spark_jobs.avro.register_avro_udf); None: Avro records are dead letters
    (``avro_no_registry``).  Spark evaluates the decoder for Avro records only.
    """
    max_bytes = events.max_event_bytes
    is_avro = is_confluent_avro(F.col("value"))
    decoded = (
        F.when(
            is_avro & (F.length("value") <= max_bytes),
            avro_to_json(F.col("value"), registry_url, schema_text()),
        )
        if registry_url
        else F.lit(None).cast("struct<json:string,error:string>")
    )
    staged = raw.select(
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("key"),
        F.col("value"),
        # length() of a binary counts bytes, which is what the size limit is about.
        F.length("value").alias("_size"),
        is_avro.alias("_avro"),
        decoded.alias("_decoded"),
    )
    # The text judged: the JSON record, or an Avro record's JSON in the newest schema.
    text = F.when(F.col("_avro"), F.col("_decoded.json")).otherwise(F.col("value").cast("string"))
    avro_error = F.when(
        F.col("_avro"), F.col("_decoded.error") if registry_url else F.lit(AVRO_NO_REGISTRY)
    )
    staged = staged.select(
        "*",
        text.alias("_text"),
        F.is_valid_utf8(text).alias("_utf8"),
        avro_error.alias("_avro_error"),
    )
    text = F.col("_text")
    # Parse only what passed the cheap checks: an oversize value is not worth parsing.
    staged = staged.withColumn(
        "_doc",
        F.when((F.col("_size") <= max_bytes) & F.col("_utf8"), F.try_parse_json(text)),
    )
    staged = staged.select(
        "*",
        *[_node(f).alias(f"_n_{f}") for f in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)],
        *[column for f in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS) for column in _typed(f)],
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
        if SPECS[name].kind in ("string", "timestamp"):
            # An empty id or name is as useless downstream as an absent one.
            return _absent(name) | (F.trim(F.col(f"_s_{name}")) == "")
        return _absent(name)

    # The contract is typed JSON: text where a number belongs (or a number where text
    # belongs) is a wrong type, not something to coerce.  Numeric strings pass only when
    # [events] accept_numeric_strings says so.
    number = JSON_NUMBER_KINDS + (r"|^STRING$" if events.accept_numeric_strings else "")

    def wrong(name: str) -> Column:
        kind = SPECS[name].kind
        if kind == "string":
            return ~_kind_is(name, r"^STRING$")
        if kind == "timestamp":
            return ~_kind_is(name, r"^STRING$") | F.col("_event_time").isNull()
        bad = ~_kind_is(name, number) | F.col(f"_t_{name}").isNull()
        if kind == "int":
            bad = bad | (F.col(f"_x_{name}") != F.col(f"_t_{name}"))
        return bad

    lag_s, lead_s = events.max_event_lag_seconds, events.max_event_lead_seconds
    event_us = F.unix_micros(F.col("_event_time"))
    kafka_us = F.unix_micros(F.col("kafka_timestamp"))

    # Ordered: the first true condition names the record's reason.  A null condition (for
    # instance a missing Kafka timestamp) counts as passing, like SQL's CASE does.
    checks: list[tuple[Column, Column | str]] = [
        (F.col("_size") > max_bytes, OVERSIZE),
        (F.col("_avro_error").isNotNull(), F.col("_avro_error")),
        (~F.col("_utf8"), INVALID_UTF8),
        (F.col("_doc").isNull(), NOT_JSON),
        # try_parse_json accepts any JSON value; an event must be an object.
        (~text.rlike(r"^\s*\{"), NOT_JSON_OBJECT),
        *[(missing(f), f"{MISSING_FIELD}:{f}") for f in REQUIRED_FIELDS],
        (is_purchase & missing("revenue"), f"{MISSING_FIELD}:revenue"),
        *[(wrong(f), f"{WRONG_TYPE}:{f}") for f in REQUIRED_FIELDS],
        (is_purchase & wrong("revenue"), f"{WRONG_TYPE}:revenue"),
        *[(~_absent(f) & wrong(f), f"{WRONG_TYPE}:{f}") for f in CHECKED_OPTIONAL],
        *[(F.col(f"_s_{f}").rlike(UNSAFE_TEXT_PATTERN), f"{UNSAFE_TEXT}:{f}") for f in TEXT_FIELDS],
        (~F.col("_s_event_type").isin(*EVENT_TYPES), UNKNOWN_EVENT_TYPE),
        (F.col("_t_price") < 0, NEGATIVE_PRICE),
        (F.col("_t_quantity") < 0, NEGATIVE_QUANTITY),
        (
            F.col("_s_event_type").isin(*COUNTED_EVENT_TYPES) & (F.col("_t_quantity") <= 0),
            NON_POSITIVE_QUANTITY,
        ),
        (
            is_purchase
            & (
                F.abs(F.col("_t_revenue") - F.col("_t_price") * F.col("_t_quantity"))
                > F.lit(REVENUE_TOLERANCE).cast(MONEY_TYPE)
            ),
            REVENUE_MISMATCH,
        ),
        # Microsecond arithmetic on longs cannot overflow the way timestamp +/- interval can.
        (event_us < kafka_us - lag_s * 1_000_000, f"{TIMESTAMP_TOO_OLD}:{lag_s}s"),
        (event_us > kafka_us + lead_s * 1_000_000, f"{TIMESTAMP_IN_FUTURE}:{lead_s}s"),
    ]

    def as_column(reason: Column | str) -> Column:
        return reason if isinstance(reason, Column) else F.lit(reason)

    first, *rest = checks
    reason = reduce(
        lambda acc, check: acc.when(check[0], as_column(check[1])),
        rest,
        F.when(first[0], as_column(first[1])),
    )

    output = F.struct(
        *[
            _output(f, is_purchase).alias("event_time" if f == TIMESTAMP_FIELD else f)
            for f in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)
        ],
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
