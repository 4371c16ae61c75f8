"""Reading the sink tables without Spark: the one reader the DAGs, plugins and tests share.

The tables are Delta Lake; a reader sees only committed versions, never the files of a
micro-batch still being written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REVENUE_TABLE = "revenue_by_category"
# The sink table's columns, in table order: the contract between the Spark job that writes
# it and every reader (quality checks, UI).
REVENUE_COLUMNS: tuple[str, ...] = (
    "window_start",
    "window_end",
    "category",
    "total_revenue",
    "purchase_count",
    "avg_order_value",
)
HIGH_VALUE_USER_COLUMNS: tuple[str, ...] = (
    "window_start",
    "window_end",
    "user_id",
    "total_spent",
    "purchase_count",
    "products_purchased",
)
SESSION_COLUMNS: tuple[str, ...] = (
    "user_id",
    "session_start",
    "session_end",
    "duration_seconds",
    "event_count",
    "total_revenue",
    "unique_products",
)
CLICK_TO_PURCHASE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "product_id",
    "click_event_id",
    "purchase_event_id",
    "click_time",
    "purchase_time",
    "time_to_purchase_seconds",
    "device_type",
    "revenue",
)
FUNNEL_COLUMNS: tuple[str, ...] = (
    "window_start",
    "window_end",
    "unique_visitors",
    "cart_users",
    "purchasers",
    "cart_conversion_rate",
    "purchase_conversion_rate",
)


def read_table(path: Path) -> pd.DataFrame | None:
    """The latest committed version of the Delta table at path, or None if none exists yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    if not DeltaTable.is_deltatable(str(path)):
        return None
    try:
        return DeltaTable(str(path)).to_pandas()
    except TableNotFoundError:
        # The first commit is being written right now: no committed version yet.
        return None
