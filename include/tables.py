"""The one reader of the sink tables without Spark.

The tables are Delta Lake; a reader sees only committed versions, never the files of a
micro-batch still being written.  Their names, schemas and keys are declared in
:mod:`include.analytics`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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
