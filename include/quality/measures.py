"""The table-level measures: one number per table check, and what it saw in words.

Each measure becomes a column of the one-row frame the table checks of
:mod:`include.quality.checks` validate: schema differences against the table contract,
duplicate keys (an exactly-once violation), minutes behind the input topic, and the
dead-letter rate.  The reconciliation of revenue against Kafka is its own job, in
:mod:`include.quality.reconciliation`.  They look at the table as a whole, never only at
the rows an incremental run reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from include.analytics import ROW_KEYS, SCHEMAS
from include.quality.checks import TableSuite
from include.quality.formatting import format_value
from include.quality.source import InputSource, Newest
from include.settings import Settings

DETAIL_EXAMPLES = 3


@dataclass(frozen=True)
class Measure:
    """A table-level measure: its value (None: not applicable) and what it saw, in words."""

    value: float | None
    detail: str


def _type_name(data_type: Any) -> str:
    import pyarrow as pa

    # A list's element field is "element" in Spark's files and "item" in pyarrow's: the
    # name carries no meaning, the element type does.
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"list<{_type_name(data_type.value_type)}>"
    return str(data_type)


def schema_measure(table: str, schema: Any) -> Measure:
    """How many columns are missing, of another type or unexpected against the contract."""
    expected = SCHEMAS[table]
    found = {f.name: _type_name(f.type) for f in schema}
    problems = []
    for f in expected:
        if f.name not in found:
            problems.append(f"{f.name} missing")
        elif found[f.name] != _type_name(f.type):
            problems.append(f"{f.name} is {found[f.name]}, expected {_type_name(f.type)}")
    problems += [f"unexpected column {name}" for name in found if name not in expected.names]
    return Measure(len(problems), "; ".join(problems) or "schema as expected")


def duplicate_measure(table: str, keys: pd.DataFrame) -> Measure:
    """How many rows repeat a key already written (``keys``: the key columns of every row)."""
    columns = list(ROW_KEYS[table])
    if keys.empty or not set(columns) <= set(keys.columns):
        return Measure(0, "no rows")
    dupes = keys[keys.duplicated(columns, keep=False)]
    count = int(keys.duplicated(columns).sum())
    if not count:
        return Measure(0, f"{len(keys):,} keys, all distinct")
    shown = dupes.drop_duplicates(columns).head(DETAIL_EXAMPLES)
    examples = ", ".join(
        "(" + ", ".join(f"{c}={format_value(row[c], (c,))}" for c in columns) + ")"
        for _, row in shown.iterrows()
    )
    rows = "row repeats a key" if count == 1 else "rows repeat keys"
    return Measure(count, f"{count} {rows} already written, e.g. {examples}")


def freshness_measure(
    suite: TableSuite,
    keys: pd.DataFrame,
    newest: Newest | None,
    now: datetime,
    flow_minutes: float,
) -> Measure:
    """Minutes of event time between the input's newest event and the table's newest row.

    Event time on both sides, so a replay of old events is judged fairly; "events flow"
    means by wall clock: the newest record reached Kafka within ``flow_minutes``.
    """
    column = suite.freshness_column
    if column is None or column not in keys.columns or keys.empty:
        return Measure(None, "not applicable: no rows yet")
    if newest is None:
        return Measure(None, "not applicable: the input topic is empty")
    arrived = datetime.fromtimestamp(newest.record_ms / 1000, UTC)
    idle = (now - arrived).total_seconds() / 60
    if idle > flow_minutes:
        return Measure(
            None, f"not applicable: no input for {idle:.0f} min (events are not flowing)"
        )
    table_newest = pd.to_datetime(keys[column], utc=True).max()
    behind = (newest.event_time - table_newest.to_pydatetime()).total_seconds() / 60
    return Measure(
        round(behind, 2),
        f"newest {column} {table_newest.isoformat()}, newest input event "
        f"{newest.event_time.isoformat()}",
    )


def dead_letter_measure(
    settings: Settings, keys: pd.DataFrame, source: InputSource, now: datetime, full: bool
) -> Measure:
    """Dead letters as a percentage of the input records, over the configured recent span
    (since the start in a full run); ``keys`` holds the dead letters' ``kafka_timestamp``."""
    q = settings.quality
    end_ms = int(now.timestamp() * 1000)
    start_ms = 0 if full else end_ms - int(q.dead_letter_window_minutes * 60_000)
    inputs = source.count_between(start_ms, end_ms)
    times = pd.to_datetime(
        keys.get("kafka_timestamp", pd.Series(dtype="datetime64[us, UTC]")), utc=True
    )
    start, end = (pd.Timestamp(ms, unit="ms", tz="UTC") for ms in (start_ms, end_ms))
    dead = int(((times >= start) & (times < end)).sum())
    span = "since the start" if full else f"in the last {q.dead_letter_window_minutes:g} min"
    if not inputs:
        return Measure(None, f"not applicable: no input records {span}")
    percent = round(100 * dead / inputs, 3)
    return Measure(percent, f"{dead:,} dead letters among {inputs:,} input records {span}")
