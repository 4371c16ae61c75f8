"""The Delta side of the pipeline's sink: each table appended by delta-rs from the driver,
exactly once per batch through the table's app transaction (:class:`DeltaTables`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

# Every line the driver logs carries the application's name (tests and users grep it).
log = logging.getLogger("streaming_app")


class DeltaTables:
    """Appends to the sink tables with delta-rs, each batch at most once per table."""

    def __init__(self, paths: Mapping[str, Path], app_suffix: str) -> None:
        self.paths = dict(paths)
        self.app_suffix = app_suffix
        self._tables: dict[str, Any] = {}

    def app_id(self, output: str) -> str:
        """The table's app transaction id: the output and the checkpoint's query id (a fresh
        checkpoint restarts batch ids at 0 and must not be mistaken for a replay)."""
        return f"{output}-{self.app_suffix}"

    def _table(self, output: str) -> Any:
        from deltalake import DeltaTable

        table = self._tables.get(output)
        if table is not None:
            try:
                table.update_incremental()
                return table
            except Exception as error:  # e.g. the log it would read on from was cleaned
                log.info("reloading table %s from its newest checkpoint (%s)", output, error)
        path = self.paths[output]
        if not (path / "_delta_log").is_dir():
            return None
        table = self._tables[output] = DeltaTable(str(path))
        return table

    def append(self, output: str, rows: pa.Table, batch_id: int) -> bool:
        """Append `rows` as batch `batch_id`; False when the table holds that batch already."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        app_id = self.app_id(output)
        table = self._table(output)
        if table is not None:
            done = table.transaction_version(app_id)
            if done is not None and done >= batch_id:
                return False
        properties = CommitProperties(app_transactions=[Transaction(app_id, batch_id)])
        write_deltalake(
            table if table is not None else str(self.paths[output]),
            rows,
            mode="append",
            commit_properties=properties,
        )
        return True
