"""Table maintenance inside the running platform (called from tests/e2e/test_platform.py).

Triggers the ``table_maintenance`` DAG while the stream writes; every task must succeed
(delta-rs compaction and vacuum, files, ``airflow db clean`` against the real metadata
database), the sink tables must be down to a few data files, and each table's pass must be
one sentence in the task log.  The caller compares the tables with the oracle afterwards.

Platform env for a real vacuum during the run (instead of 24 hours, under which nothing is
old enough yet): ``ECOM_MAINTENANCE__VACUUM_RETENTION_HOURS=0``.  The log retention stays
as shipped: cleaning the log under a live writer is tests/integration/test_maintenance.py's.
"""

from __future__ import annotations

import re

from include.analytics import QUERIES
from include.runtime.airflow_api import AirflowApi
from include.settings import Settings
from tests.conftest import parquet_files

DAG_ID = "table_maintenance"


def referenced_files(table) -> int:
    """The data files of the table's current version."""
    from deltalake import DeltaTable

    return len(DeltaTable(str(table)).file_uris()) if DeltaTable.is_deltatable(str(table)) else 0


def check_table_maintenance(api: AirflowApi, settings: Settings, env: dict) -> None:
    """Run the maintenance DAG now, while the stream writes, and check what it did."""
    before = {q: referenced_files(settings.paths.table_path(q)) for q in QUERIES}
    on_disk = {q: parquet_files(settings.paths.table_path(q)) for q in QUERIES}
    run = api.trigger(DAG_ID)
    state = api.wait_for_run(DAG_ID, run, {"success", "failed"}, timeout=600)
    tasks = {ti["task_id"]: ti["state"] for ti in api.task_instances(DAG_ID, run)}
    assert state == "success", f"{DAG_ID} {state}: {tasks}; logs under {settings.paths.log_dir}"
    logs = "\n".join(
        path.read_text(errors="replace")
        for path in (settings.paths.log_dir / "airflow" / f"dag_id={DAG_ID}").rglob("*.log")
    )
    for query in QUERIES:
        if not before[query]:
            continue  # no rows yet: nothing to compact
        assert re.search(rf"{query}: \d+ data files compacted to \d+", logs), query
        # One compacted file, plus what the stream appended since (a batch or two).
        after = referenced_files(settings.paths.table_path(query))
        assert after <= 3 or after < before[query], (query, before[query], after)
    if env.get("ECOM_MAINTENANCE__VACUUM_RETENTION_HOURS") == "0":
        busiest = max(QUERIES, key=lambda q: on_disk[q])
        left = parquet_files(settings.paths.table_path(busiest))
        if on_disk[busiest] >= 4:  # enough micro-batch files for the compaction to merge
            assert left < on_disk[busiest], (busiest, on_disk[busiest], left)
