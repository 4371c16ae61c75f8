"""What one quality run reads of each sink table, and how the rows are shaped for GX.

Incremental by default: the row checks see only the rows committed since the last
validated Delta version of a table (the tables are append-only, so these are the windows
closed since then); a full run reads every row.  The new rows are the files the commits
after that version added with ``dataChange: true``: a compaction (table_maintenance)
rewrites files with ``dataChange: false`` and adds no row, so it is never read twice.  When
those commits or files are gone (log cleanup, vacuum: a check older than their
retention), the run reads every row instead.  The table checks need every row's key
and time columns whatever the mode, so those are always read whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd

from include.analytics import ROW_KEYS
from include.quality.checks import SESSION_LENGTH, WINDOW_LENGTH, TableSuite
from include.quality.formatting import DECIMAL_COLUMNS


@dataclass
class TableSlice:
    """What one run validates of one table."""

    rows: pd.DataFrame  # the rows committed since the last validation (all rows: full)
    keys: pd.DataFrame  # the key (and time) columns of every row
    schema: Any  # the table's Arrow schema
    version: int
    since: int | None  # last validated version; None: every row


def read_slice(path: Path, suite: TableSuite, since: int | None) -> TableSlice | None:
    """Rows added after Delta version ``since`` (every row when None), or None: no table."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    if not DeltaTable.is_deltatable(str(path)):
        return None
    try:
        table = DeltaTable(str(path))
    except TableNotFoundError:
        return None
    schema = pa.schema(table.schema().to_arrow())
    version = table.version()
    key_columns = [
        c
        for c in (*ROW_KEYS[suite.table], suite.freshness_column, "kafka_timestamp")
        if c and c in schema.names
    ]
    keys = table.to_pandas(columns=list(dict.fromkeys(key_columns)))
    if since is None or since > version:
        since = None
        rows = table.to_pandas()
    else:
        new = added_files(path, since, version)
        if new is None:
            since = None
            rows = table.to_pandas()
        elif new:
            rows = ds.dataset(new, format="parquet", schema=schema).to_table().to_pandas()
        else:
            rows = schema.empty_table().to_pandas()
    return TableSlice(rows=rows, keys=keys, schema=schema, version=version, since=since)


def added_files(path: Path, since: int, version: int) -> list[str] | None:
    """The data files that the commits after ``since`` up to ``version`` added as new rows
    (``dataChange: true``), or None when a commit or one of those files is gone."""
    found = []
    for number in range(since + 1, version + 1):
        commit = path / "_delta_log" / f"{number:020d}.json"
        try:
            lines = commit.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return None  # cleaned up: older than the log's retention
        for line in lines:
            add = json.loads(line).get("add") if line.strip() else None
            if add and add.get("dataChange", True):
                found.append(path / unquote(add["path"]))
    # Files a compaction replaced stay until vacuumed, then the run reads every row.
    return [str(f) for f in found] if all(f.exists() for f in found) else None


def prepare_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` shaped for GX: decimals as floats, derived lengths added."""
    prepared = frame.copy()
    for column in DECIMAL_COLUMNS:
        if column in prepared.columns:
            prepared[column] = pd.to_numeric(prepared[column], errors="coerce").astype("float64")
    pairs = {
        WINDOW_LENGTH: ("window_start", "window_end"),
        SESSION_LENGTH: ("session_start", "session_end"),
    }
    for derived, (begin, end) in pairs.items():
        # A missing source column leaves the derived one out: the schema check then names
        # the real culprit instead of a confusing length failure.
        if {begin, end} <= set(prepared.columns):
            length = pd.to_datetime(prepared[end], utc=True) - pd.to_datetime(
                prepared[begin], utc=True
            )
            prepared[derived] = length.dt.total_seconds()
    return prepared
