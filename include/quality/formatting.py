"""How the quality checks write values in words: money as money, whole floats as integers.

The check results (:mod:`include.quality.report`), the measures' details and the GX
samples all print values through :func:`format_value`, so a value reads the same in the
task log, the history and the report pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from include.analytics import SCHEMAS

# Money and rates arrive from Delta as Python Decimals in object columns; GX's pandas
# metrics compare against float bounds, so these are cast before validation.
DECIMAL_COLUMNS: frozenset[str] = frozenset(
    f.name for schema in SCHEMAS.values() for f in schema if pa.types.is_decimal(f.type)
)


def is_missing(value: Any) -> bool:
    """Whether ``value`` is no value: None, or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any, columns: Sequence[str]) -> str:
    """``value`` in words; a float from a money column (``columns``) with two decimals."""
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{k}={format_value(v, (k,))}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v, columns) for v in value) + "]"
    if isinstance(value, float):
        if any(column in DECIMAL_COLUMNS for column in columns):
            return f"{value:.2f}"  # money reads as money
        if value.is_integer():
            return str(int(value))
    return str(value)
