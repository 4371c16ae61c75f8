"""The sink tables' contract: names, schemas, keys, and the one reader without Spark.

The tables are Delta Lake; a reader sees only committed versions, never the files of a
micro-batch still being written.  The schemas below are what the Spark job writes (Delta
types as Arrow types); the quality checks compare every table with them, and the
integration tests prove the Spark job's tables match.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

REVENUE_TABLE = "revenue_by_category"
HIGH_VALUE_TABLE = "high_value_users"
FUNNEL_TABLE = "conversion_funnel"
SESSION_TABLE = "user_sessions"
CLICK_TABLE = "click_to_purchase"
DEAD_LETTER_TABLE = "dead_letters"

_TIME = pa.timestamp("us", tz="UTC")
_MONEY = pa.decimal128(18, 2)
_RATE = pa.decimal128(5, 2)

SCHEMAS: dict[str, pa.Schema] = {
    REVENUE_TABLE: pa.schema(
        [
            ("window_start", _TIME),
            ("window_end", _TIME),
            ("category", pa.string()),
            ("total_revenue", _MONEY),
            ("purchase_count", pa.int64()),
            ("avg_order_value", _MONEY),
        ]
    ),
    HIGH_VALUE_TABLE: pa.schema(
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
    FUNNEL_TABLE: pa.schema(
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
    SESSION_TABLE: pa.schema(
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
    CLICK_TABLE: pa.schema(
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
    DEAD_LETTER_TABLE: pa.schema(
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
}

# The sink tables' columns, in table order: the contract between the Spark job that writes
# them and every reader (quality checks, UI, the test oracle).
REVENUE_COLUMNS: tuple[str, ...] = tuple(SCHEMAS[REVENUE_TABLE].names)
HIGH_VALUE_USER_COLUMNS: tuple[str, ...] = tuple(SCHEMAS[HIGH_VALUE_TABLE].names)
FUNNEL_COLUMNS: tuple[str, ...] = tuple(SCHEMAS[FUNNEL_TABLE].names)
SESSION_COLUMNS: tuple[str, ...] = tuple(SCHEMAS[SESSION_TABLE].names)
CLICK_TO_PURCHASE_COLUMNS: tuple[str, ...] = tuple(SCHEMAS[CLICK_TABLE].names)

# The event-time column each analytic's rows are placed by (backfill intervals, freshness).
TIME_KEYS = {
    REVENUE_TABLE: "window_start",
    HIGH_VALUE_TABLE: "window_start",
    FUNNEL_TABLE: "window_start",
    SESSION_TABLE: "session_start",
    CLICK_TABLE: "click_time",
}
# Columns that identify a row: a second row with the same key is an exactly-once violation.
ROW_KEYS = {
    REVENUE_TABLE: ("window_start", "category"),
    HIGH_VALUE_TABLE: ("window_start", "user_id"),
    FUNNEL_TABLE: ("window_start",),
    SESSION_TABLE: ("user_id", "session_start"),
    CLICK_TABLE: ("click_event_id", "purchase_event_id"),
    DEAD_LETTER_TABLE: ("source_topic", "source_partition", "source_offset"),
}


def read_table(path: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
    """The latest committed version of the Delta table at path, or None if none exists yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    if not DeltaTable.is_deltatable(str(path)):
        return None
    try:
        return DeltaTable(str(path)).to_pandas(columns=columns)
    except TableNotFoundError:
        # The first commit is being written right now: no committed version yet.
        return None
