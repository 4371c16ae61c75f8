"""The analytics and the dead-letter sink, each declared once.

Every part of the platform reads this list instead of naming the analytics itself: the
streaming app starts one query per entry, the backfill recomputes them, the topics are
provisioned from it, the quality checks and the UI read the tables it names, the supervisor
and the DAGs watch its queries, and the benchmarks measure them.  Adding an analytic is one
new :class:`Analytic` declared below and listed in :data:`ANALYTICS`, its transform in
``spark_jobs/transforms.py`` (a function of the same name) and its oracle in
``tests/oracle.py``; it is checked for its keys, schema and duplicates from the declaration
alone, and checks of its own can join ``include/quality/checks.py``.

Each output is a Delta table written exactly once (the schema below, as Arrow types) and a
Kafka topic written at least once with deterministic keys: ``<output_topic_prefix><name>``
for an analytic, ``kafka.dead_letter_topic`` for the dead letters.  This module imports
neither Spark nor Airflow: the DAG processor and the Spark driver both read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

_TIME = pa.timestamp("us", tz="UTC")
_MONEY = pa.decimal128(18, 2)
_RATE = pa.decimal128(5, 2)


@dataclass(frozen=True)
class Output:
    """A streaming query's sink: its table's schema and the columns that identify a row.

    ``keys`` identify a row (a second row with the same key is an exactly-once violation)
    and, joined with ``|`` in this order, make the Kafka record's key.
    """

    name: str
    schema: pa.Schema
    keys: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns, in table order."""
        return tuple(self.schema.names)


@dataclass(frozen=True)
class Analytic(Output):
    """One analytic over the valid events.

    ``time_column`` places a row in event time (backfill intervals, freshness).  The
    transform is ``spark_jobs.transforms.<name>``; it gets de-duplicated events unless
    ``deduplicates`` says it takes valid events as they come and de-duplicates them itself.
    """

    time_column: str = "window_start"
    deduplicates: bool = False

    @property
    def windowed(self) -> bool:
        """Rows are event-time windows, final once the watermark passes their end."""
        return self.time_column == "window_start"


REVENUE_BY_CATEGORY = Analytic(
    name="revenue_by_category",
    schema=pa.schema(
        [
            ("window_start", _TIME),
            ("window_end", _TIME),
            ("category", pa.string()),
            ("total_revenue", _MONEY),
            ("purchase_count", pa.int64()),
            ("avg_order_value", _MONEY),
        ]
    ),
    keys=("category", "window_start"),
)

HIGH_VALUE_USERS = Analytic(
    name="high_value_users",
    schema=pa.schema(
        [
            ("window_start", _TIME),
            ("window_end", _TIME),
            ("user_id", pa.string()),
            ("total_spent", _MONEY),
            ("purchase_count", pa.int64()),
            ("products_purchased", pa.list_(pa.string())),
            ("product_ids_purchased", pa.list_(pa.string())),
        ]
    ),
    keys=("user_id", "window_start"),
)

CONVERSION_FUNNEL = Analytic(
    name="conversion_funnel",
    schema=pa.schema(
        [
            ("window_start", _TIME),
            ("window_end", _TIME),
            ("unique_visitors", pa.int64()),
            ("cart_users", pa.int64()),
            ("purchasers", pa.int64()),
            ("cart_conversion_rate", _RATE),
            ("purchase_conversion_rate", _RATE),
        ]
    ),
    keys=("window_start",),
)

USER_SESSIONS = Analytic(
    name="user_sessions",
    schema=pa.schema(
        [
            ("user_id", pa.string()),
            ("session_start", _TIME),
            ("session_end", _TIME),
            ("duration_seconds", pa.float64()),
            ("event_count", pa.int64()),
            ("total_revenue", _MONEY),
            ("unique_products", pa.int64()),
        ]
    ),
    keys=("user_id", "session_start"),
    time_column="session_start",
)

CLICK_TO_PURCHASE = Analytic(
    name="click_to_purchase",
    schema=pa.schema(
        [
            ("user_id", pa.string()),
            ("product_id", pa.string()),
            ("click_event_id", pa.string()),
            ("purchase_event_id", pa.string()),
            ("click_time", _TIME),
            ("purchase_time", _TIME),
            ("time_to_purchase_seconds", pa.float64()),
            ("device_type", pa.string()),
            ("revenue", _MONEY),
        ]
    ),
    keys=("click_event_id", "purchase_event_id"),
    time_column="click_time",
    # A join reads its input twice: de-duplicating each side after its filter keeps
    # every event id in state once, not twice.
    deduplicates=True,
)

# The analytics, in the order the app starts them and the reports list them.
ANALYTICS: tuple[Analytic, ...] = (
    REVENUE_BY_CATEGORY,
    HIGH_VALUE_USERS,
    CONVERSION_FUNNEL,
    USER_SESSIONS,
    CLICK_TO_PURCHASE,
)

# Records that failed validation: the raw bytes, where they came from, and why.
DEAD_LETTERS = Output(
    name="dead_letters",
    schema=pa.schema(
        [
            ("reason", pa.string()),
            ("reason_code", pa.string()),
            ("source_topic", pa.string()),
            ("source_partition", pa.int32()),
            ("source_offset", pa.int64()),
            ("kafka_timestamp", _TIME),
            ("raw_key", pa.binary()),
            ("raw_value", pa.binary()),
            ("raw_value_text", pa.string()),
            ("raw_value_bytes", pa.int32()),
        ]
    ),
    keys=("source_topic", "source_partition", "source_offset"),
)

# The one streaming query that computes and writes every output (its checkpoint, its lease).
PIPELINE = "pipeline"

# Views of the declarations above, for readers that look outputs up by name.
ANALYTIC_NAMES: tuple[str, ...] = tuple(a.name for a in ANALYTICS)
BY_NAME: dict[str, Analytic] = {a.name: a for a in ANALYTICS}
OUTPUTS: tuple[Output, ...] = (*ANALYTICS, DEAD_LETTERS)
# The outputs (sink tables and topics): one per analytic, then the dead letters.  Each is a
# branch of the one streaming query PIPELINE; the supervisor, the health page, make status
# and the metrics report each output's progress under its name.
QUERIES: tuple[str, ...] = tuple(o.name for o in OUTPUTS)
SCHEMAS: dict[str, pa.Schema] = {o.name: o.schema for o in OUTPUTS}
ROW_KEYS: dict[str, tuple[str, ...]] = {o.name: o.keys for o in OUTPUTS}
TIME_COLUMNS: dict[str, str] = {a.name: a.time_column for a in ANALYTICS}
