"""What the pages show, gathered from the files the pipeline leaves behind.

* ``<state>/metrics/health.json``: the supervisor's verdict per query (every 2 minutes by default);
* ``<state>/metrics/progress.jsonl``: the Spark listener's record of every micro-batch;
* ``<state>/quality/history.jsonl``: every quality run, per table and check;
* the Delta tables: revenue by category and the funnel over time, dead-letter count.

Nothing here needs Spark, Kafka or Airflow: the pages stay up when those are down, and say so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from include.analytics import CONVERSION_FUNNEL, DEAD_LETTERS, REVENUE_BY_CATEGORY
from include.contract import parse_utc
from include.quality.history import newest_run, read_history
from include.registry import versions_in_words
from include.runtime.spark_history import DriverLink, history_url, streaming_driver_links
from include.runtime.spark_launch import spark_ui_url
from include.settings import Settings
from include.streaming.dead_letter_share import recent_dead_letters
from include.streaming.progress import read_progress
from include.streaming.status import pipeline_status
from include.tables import read_table
from include.ui.charts import line_chart, sparkline

EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass
class QueryHealth:
    """One query's row on the health page: the supervisor's verdict and the figures of its last
    progress record (rates per second, batch duration in seconds), with sparklines."""

    query: str
    state: str
    reason: str
    lag: int | None = None
    input_rate: float | None = None
    processed_rate: float | None = None
    batch_seconds: float | None = None
    state_rows: int | None = None
    late_dropped: int = 0
    last_batch: datetime | None = None
    charts: dict[str, str] = field(default_factory=dict)


@dataclass
class HealthView:
    """Everything the health page shows for the `hours` before `now`."""

    now: datetime
    hours: float
    checked_at: datetime | None  # when the supervisor last judged the queries
    queries: list[QueryHealth]
    dead_letters: int | None
    # Most of the recent input dead-lettered: the page says so first (None: all is well).
    dead_letter_alarm: str | None
    # The event schema's versions in the registry, or why they are not known.
    event_schema: str
    last_quality: dict[str, Any] | None
    revenue_by_category: dict[str, float]  # over the shown hours, from whole windows
    revenue_chart: str
    funnel_chart: str
    conversion_chart: str
    spark_ui: str  # the streaming driver's Spark UI (answers while a driver runs)
    # The Spark History Server, and the current and previous streaming drivers' runs in it.
    spark_history: str = ""
    driver_runs: list[DriverLink] = field(default_factory=list)


def dead_letter_alarm(settings: Settings) -> str | None:
    """The warning when most of the recent input went to the dead letters, else None."""
    share = recent_dead_letters(settings)
    return share.sentence() if share.alarming else None


def query_health(settings: Settings, since: datetime) -> tuple[datetime | None, list[QueryHealth]]:
    """When the supervisor last judged, and every query's health from its verdict and its
    progress records since `since`."""
    status = pipeline_status(settings)
    records = [
        r
        for r in read_progress(settings.paths.metrics_dir, tail_bytes=32_000_000)
        if (parse_utc(r.get("timestamp")) or since) >= since
    ]
    by_query: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_query[str(record.get("name"))].append(record)
    found = []
    for current in status.queries:
        history = by_query.get(current.query, [])
        last = history[-1] if history else {}
        item = QueryHealth(
            query=current.query,
            state=current.state,
            reason=current.reason,
            lag=current.lag,
            input_rate=last.get("inputRowsPerSecond"),
            processed_rate=last.get("processedRowsPerSecond"),
            batch_seconds=(
                last["batchDurationMs"] / 1000 if last.get("batchDurationMs") is not None else None
            ),
            state_rows=last.get("stateRowsTotal"),
            late_dropped=sum(r.get("rowsDroppedByWatermark") or 0 for r in history),
            last_batch=parse_utc(last.get("timestamp")),
        )
        item.charts = {
            "input": sparkline([r.get("inputRowsPerSecond") for r in history]),
            "duration": sparkline([(r.get("batchDurationMs") or 0) / 1000 for r in history]),
            "state": sparkline([r.get("stateRowsTotal") for r in history]),
        }
        found.append(item)
    return status.checked_at, found


def dead_letter_count(settings: Settings) -> int | None:
    """Rows in the dead-letter table, from the Delta log's statistics (no data read)."""
    from deltalake import DeltaTable

    path = settings.paths.table_path(DEAD_LETTERS.name)
    if not DeltaTable.is_deltatable(str(path)):
        return None
    actions = DeltaTable(str(path)).get_add_actions(flatten=True)
    counts = actions.column("num_records").to_pylist()
    if any(c is None for c in counts):  # files written without statistics: count rows
        frame = read_table(path, columns=["source_offset"])
        return 0 if frame is None else len(frame)
    return int(sum(counts))


def _recent(frame: pd.DataFrame | None, since: datetime) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame()
    frame = frame.assign(window_start=pd.to_datetime(frame["window_start"], utc=True))
    return frame[frame["window_start"] >= pd.Timestamp(since)].sort_values("window_start")


def whole_windows(frame: pd.DataFrame, length_seconds: int) -> pd.DataFrame:
    """The windows starting on a multiple of their length: they tile time without overlap,
    so each event is counted once although the windows slide."""
    if frame.empty:
        return frame
    starts = (frame["window_start"] - EPOCH) // pd.Timedelta(seconds=1)
    return frame[starts % length_seconds == 0]


def revenue_totals(frame: pd.DataFrame) -> dict[str, float]:
    """Revenue per category over ``frame``'s (whole) windows."""
    if frame.empty:
        return {}
    totals = frame.groupby("category")["total_revenue"].sum()
    return {category: float(total) for category, total in sorted(totals.items())}


def revenue_series(frame: pd.DataFrame, bucket_seconds: int) -> dict[str, list]:
    """Revenue per category summed into buckets: about 60 points a line, whatever the span."""
    series: dict[str, list] = defaultdict(list)
    if frame.empty:
        return series
    buckets = frame["window_start"].dt.floor(f"{bucket_seconds}s")
    summed = frame.assign(bucket=buckets).groupby(["category", "bucket"])["total_revenue"].sum()
    for (category, bucket), total in summed.items():
        series[category].append((bucket.to_pydatetime(), float(total)))
    return series


def health_view(settings: Settings, hours: float = 3, now: datetime | None = None) -> HealthView:
    """The health page for the `hours` before `now` (default: the current time)."""
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    checked, queries = query_health(settings, since)
    a = settings.analytics
    revenue_rows = read_table(settings.paths.table_path(REVENUE_BY_CATEGORY.name))
    revenue = whole_windows(_recent(revenue_rows, since), a.revenue_window_seconds)
    funnel_rows = read_table(settings.paths.table_path(CONVERSION_FUNNEL.name))
    funnel = whole_windows(_recent(funnel_rows, since), a.funnel_window_seconds)
    window = a.revenue_window_seconds
    bucket = max(window, round(hours * 3600 / 60 / window) * window)

    funnel_series: dict[str, list] = defaultdict(list)
    rate_series: dict[str, list] = defaultdict(list)
    for row in funnel.itertuples():
        moment = row.window_start.to_pydatetime()
        for name in ("unique_visitors", "cart_users", "purchasers"):
            funnel_series[name].append((moment, float(getattr(row, name))))
        for name in ("cart_conversion_rate", "purchase_conversion_rate"):
            value = getattr(row, name)
            if value is not None and not pd.isna(value):
                rate_series[name].append((moment, float(value)))

    runs = read_history(settings, limit=1)
    return HealthView(
        now=now,
        hours=hours,
        checked_at=checked,
        queries=queries,
        dead_letters=dead_letter_count(settings),
        dead_letter_alarm=dead_letter_alarm(settings),
        event_schema=versions_in_words(settings),
        last_quality=runs[0] if runs else None,
        revenue_by_category=revenue_totals(revenue),
        revenue_chart=line_chart(
            revenue_series(revenue, bucket),
            title=f"Revenue per {bucket // 60} min, by category",
        ),
        funnel_chart=line_chart(
            funnel_series,
            title=f"Funnel: distinct users per {a.funnel_window_seconds // 60}-minute window",
        ),
        conversion_chart=line_chart(rate_series, title="Conversion rates", unit="%"),
        spark_ui=spark_ui_url(settings),
        spark_history=history_url(settings),
        driver_runs=streaming_driver_links(settings),
    )


# ---------------------------------------------------------------- quality


@dataclass
class QualityView:
    """What the quality page shows: the recent runs, and each check's result over the last
    ones."""

    runs: list[dict[str, Any]]  # newest first
    latest: dict[str, Any] | None
    matrix_runs: list[dict[str, Any]]  # oldest first, for the per-check history
    matrix: list[tuple[str, str, list[dict[str, Any] | None]]]  # (table, check, per run)
    docs_available: bool


def counts(run: dict[str, Any]) -> dict[str, int]:
    """How many of a run's checks passed, warned and failed."""
    found = {"pass": 0, "warn": 0, "fail": 0}
    for table in run.get("tables", []):
        for check in table.get("checks", []):
            found[check["status"]] = found.get(check["status"], 0) + 1
    return found


def quality_view(settings: Settings, limit: int = 50, columns: int = 20) -> QualityView:
    """The quality page: the last `limit` runs, and each (table, check)'s result over the last
    `columns` of them."""
    runs = read_history(settings, limit=limit)
    for run in runs:
        run["counts"] = counts(run)
    shown = list(reversed(runs[:columns]))
    rows: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
    for i, run in enumerate(shown):
        for table in run.get("tables", []):
            for check in table.get("checks", []):
                cells = rows.setdefault((table["table"], check["name"]), [None] * len(shown))
                cells[i] = check
    matrix = [(table, check, cells) for (table, check), cells in rows.items()]
    return QualityView(
        runs=runs,
        latest=runs[0] if runs else None,
        matrix_runs=shown,
        matrix=matrix,
        docs_available=docs_root(settings).joinpath("index.html").exists(),
    )


def _newest_run(settings: Settings, matches: Callable[[dict], bool]) -> dict[str, Any] | None:
    run = newest_run(settings, matches)
    return {**run, "counts": counts(run)} if run else None


def run_for_airflow(settings: Settings, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """The latest quality run recorded for an Airflow DAG run (its last try)."""
    return _newest_run(
        settings,
        lambda run: (
            (run.get("airflow") or {}).get("dag_id") == dag_id
            and (run.get("airflow") or {}).get("run_id") == run_id
        ),
    )


def run_by_id(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The quality run with this id, with its counts; None when the history has none."""
    return _newest_run(settings, lambda run: run.get("run_id") == run_id)


def docs_root(settings: Settings):
    """The folder of the GX Data Docs site the quality runs build."""
    from include.quality.gx_runner import DOCS_SITE_NAME, GX_DIR_NAME

    return settings.paths.quality_dir / GX_DIR_NAME / "uncommitted" / "data_docs" / DOCS_SITE_NAME
