"""The Airflow Assets of the sink tables: how table updates trigger the quality checks.

The streaming job runs for days in one task, so it cannot announce each commit itself.
The supervisor DAG, every two minutes, compares each table's Delta version with the one it
announced last and emits an asset event (through the alias below) for every table that
changed; the backfill DAG emits its tables' events when it has rewritten an interval.  The
data_quality DAG is scheduled on all of them (and on a cron).
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Asset, AssetAlias

from include.analytics import QUERIES
from include.jsonfile import read_json, write_json
from include.settings import Settings

SINK_UPDATES = AssetAlias(name="sink-table-updates")
ANNOUNCED_FILE = "announced_versions.json"


def sink_asset(table: str) -> Asset:
    """The Airflow Asset of sink table `table` (``ecom://sink/<table>``)."""
    return Asset(name=f"sink.{table}", uri=f"ecom://sink/{table}", group="sink-tables")


def backfill_asset(analytic: str) -> Asset:
    """The Airflow Asset of an analytic's backfill table (``ecom://backfill/<analytic>``)."""
    return Asset(
        name=f"backfill.{analytic}", uri=f"ecom://backfill/{analytic}", group="backfill-tables"
    )


def table_version(path: Path) -> int | None:
    """The latest committed Delta version of the table at ``path``, or None."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    if not DeltaTable.is_deltatable(str(path)):
        return None
    try:
        return DeltaTable(str(path)).version()
    except TableNotFoundError:
        return None


def changed_tables(settings: Settings) -> dict[str, int]:
    """Sink tables whose version moved since the last call, with their new versions; the
    versions are remembered in ``<state>/metrics/announced_versions.json``."""
    path = settings.paths.metrics_dir / ANNOUNCED_FILE
    announced = read_json(path, {})
    # Every query writes one sink table of its name.
    current = {t: table_version(settings.paths.table_path(t)) for t in QUERIES}
    changed = {t: v for t, v in current.items() if v is not None and announced.get(t) != v}
    if changed:
        write_json(path, {**announced, **changed})
    return changed
