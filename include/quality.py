"""Run the data quality checks on every sink table, record the results, build the report.

:func:`run_quality` validates each table of :func:`include.quality_checks.table_suites`
with Great Expectations (GX Core 1.x) in a file-backed context under
``settings.quality_dir / "gx"``, so the HTML Data Docs land at a stable path.

* **Incremental by default**: the row checks see only the rows committed since the last
  validated Delta version of each table (the tables are append-only, so these are the
  windows closed since then); ``full=True`` checks every row.  The table checks (schema,
  duplicate keys, freshness, reconciliation, dead-letter rate) always look at the table
  as a whole, or at the slice's windows in full.
* **History**: one JSON line per run in ``history.jsonl``: per table and per check its
  severity, status (pass, warn, fail), observed value and a plain-words detail.
* **Outcome**: :func:`raise_for_failures` raises :class:`DataQualityError` naming every
  failed ``fail`` check; failed ``warn`` checks are only reported.

``great_expectations`` is imported inside functions only: the import takes seconds and
Airflow parses the DAG file that imports this module far more often than it runs it.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
import pyarrow as pa

from include.jsonfile import read_json, write_json
from include.quality_checks import (
    DEAD_LETTER_PERCENT,
    DUPLICATE_KEYS,
    FAIL,
    MINUTES_BEHIND_INPUT,
    RECONCILIATION_MISMATCHES,
    ROWS,
    SCHEMA_DIFFERENCES,
    SESSION_LENGTH,
    TABLE,
    WARN,
    WINDOW_LENGTH,
    CheckSpec,
    TableSuite,
    table_suites,
)
from include.quality_source import InputSource, Newest, expected_revenue
from include.settings import Settings
from include.tables import (
    DEAD_LETTER_TABLE,
    REVENUE_TABLE,
    ROW_KEYS,
    SCHEMAS,
    TIME_KEYS,
    read_table,
)

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

log = logging.getLogger(__name__)

PASS = "pass"
SKIPPED = "skipped"
# Money and rates arrive from Delta as Python Decimals in object columns; GX's pandas
# metrics compare against float bounds, so these are cast before validation.
DECIMAL_COLUMNS: frozenset[str] = frozenset(
    f.name for schema in SCHEMAS.values() for f in schema if pa.types.is_decimal(f.type)
)

GX_DIR_NAME = "gx"
DATASOURCE_NAME = "analytics_frames"
BATCH_DEFINITION_NAME = "whole_frame"
DOCS_SITE_NAME = "local_site"
HISTORY_FILE = "history.jsonl"
VALIDATED_FILE = "validated.json"
SAMPLE_SIZE = 3
DETAIL_EXAMPLES = 3


class NoDataYet(Exception):
    """No sink table has enough committed rows to check: skip, don't fail."""


class DataQualityError(Exception):
    """At least one check of severity ``fail`` failed."""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check, reduced to what a log line, the history and the UI need."""

    name: str
    severity: str
    expectation: str
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int | None = None
    observed_value: Any = None
    sample: list[Any] = field(default_factory=list)
    error: str | None = None
    detail: str | None = None  # what the measure saw, in words (table checks)

    @property
    def status(self) -> str:
        if self.success:
            return PASS
        return WARN if self.severity == WARN else FAIL

    @property
    def is_row_check(self) -> bool:
        return bool(self.columns) and self.columns[0] not in TABLE_MEASURES

    @property
    def observed_text(self) -> str:
        """What the check saw, short: "3 rows" for a row check, the measure otherwise."""
        if self.is_row_check and self.unexpected_count is not None:
            return f"{self.unexpected_count} row{'' if self.unexpected_count == 1 else 's'}"
        if _is_missing(self.observed_value):
            return "-"
        return _format_value(self.observed_value, self.columns)

    def describe(self) -> str:
        """One plain-words line, e.g. ``total_revenue >= 0: 3 rows violate (sample: -5.00)``."""
        if self.error:
            text = f"{self.name}: could not be evaluated ({self.error})"
        elif self.unexpected_count is not None and self.is_row_check:
            if self.success:
                text = f"{self.name}: ok"
            else:
                rows = "row violates" if self.unexpected_count == 1 else "rows violate"
                text = f"{self.name}: {self.unexpected_count} {rows}"
                shown = [_format_value(v, self.columns) for v in self.sample if not _is_missing(v)]
                if shown:
                    text += f" (sample: {', '.join(shown)})"
        elif self.success:
            text = f"{self.name}: ok"
        else:
            text = f"{self.name}: observed {_format_value(self.observed_value, self.columns)}"
        return f"{text}; {self.detail}" if self.detail else text


TABLE_MEASURES = (
    SCHEMA_DIFFERENCES,
    DUPLICATE_KEYS,
    MINUTES_BEHIND_INPUT,
    RECONCILIATION_MISMATCHES,
    DEAD_LETTER_PERCENT,
)


@dataclass(frozen=True)
class TableReport:
    """The checks of one table in one run."""

    table: str
    status: str  # pass, warn, fail or skipped
    rows_checked: int
    rows_in_table: int
    versions: tuple[int | None, int | None]  # (last validated before, validated now)
    checks: tuple[CheckResult, ...]
    note: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [
            {**asdict(c), "status": c.status, "observed_text": c.observed_text} for c in self.checks
        ]
        return data


@dataclass(frozen=True)
class RunReport:
    """One run of the quality checks over the sink tables."""

    run_id: str
    at: str  # ISO-8601 UTC
    mode: str  # incremental or full
    tables: tuple[TableReport, ...]
    report_path: Path  # absolute path of the Data Docs index.html
    airflow: Mapping[str, Any] = field(default_factory=dict)  # dag_id, run_id, try_number

    @property
    def status(self) -> str:
        statuses = {t.status for t in self.tables}
        for status in (FAIL, WARN, PASS):
            if status in statuses:
                return status
        return SKIPPED

    def checks_with(self, status: str) -> list[tuple[str, CheckResult]]:
        return [(t.table, c) for t in self.tables for c in t.checks if c.status == status]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "at": self.at,
            "mode": self.mode,
            "status": self.status,
            "airflow": dict(self.airflow),
            "report_path": str(self.report_path),
            "tables": [t.to_json_dict() for t in self.tables],
        }


# ---------------------------------------------------------------- reading the tables


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
        # Append-only tables: the files of the current version minus those of `since`.
        old = set(DeltaTable(str(path), version=since).file_uris())
        new = [uri for uri in table.file_uris() if uri not in old]
        rows = (
            ds.dataset(new, format="parquet", schema=schema).to_table().to_pandas()
            if new
            else schema.empty_table().to_pandas()
        )
    return TableSlice(rows=rows, keys=keys, schema=schema, version=version, since=since)


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


# ---------------------------------------------------------------- table-level measures


@dataclass(frozen=True)
class Measure:
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
    columns = list(ROW_KEYS[table])
    if keys.empty or not set(columns) <= set(keys.columns):
        return Measure(0, "no rows")
    dupes = keys[keys.duplicated(columns, keep=False)]
    count = int(keys.duplicated(columns).sum())
    if not count:
        return Measure(0, f"{len(keys):,} keys, all distinct")
    shown = dupes.drop_duplicates(columns).head(DETAIL_EXAMPLES)
    examples = ", ".join(
        "(" + ", ".join(f"{c}={_format_value(row[c], (c,))}" for c in columns) + ")"
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


def reconciliation_measure(
    settings: Settings,
    table_rows: pd.DataFrame,
    window_starts: pd.Series,
    source: InputSource,
    quarantined: set[tuple[int, int]],
) -> Measure:
    """Revenue windows whose total differs from the purchases read back from Kafka."""
    if window_starts.empty:
        return Measure(0, "no new windows to reconcile")
    starts = pd.to_datetime(window_starts, utc=True)
    first, last = starts.min(), starts.max()
    margin_ms = settings.quality.reconcile_margin_seconds * 1000
    records = source.records_since(int(first.timestamp() * 1000) - margin_ms)
    a = settings.analytics
    expected = expected_revenue(
        records,
        quarantined,
        a.revenue_window_seconds,
        a.revenue_slide_seconds,
        settings.events.naive_timezone,
    )
    expected = expected[(expected["window_start"] >= first) & (expected["window_start"] <= last)]
    actual = table_rows.assign(window_start=pd.to_datetime(table_rows["window_start"], utc=True))
    actual = actual[(actual["window_start"] >= first) & (actual["window_start"] <= last)]
    merged = expected.merge(
        actual[["window_start", "category", "total_revenue"]],
        on=["window_start", "category"],
        how="outer",
        suffixes=("_kafka", "_table"),
    )
    kafka = merged["total_revenue_kafka"].map(
        lambda v: Decimal(0) if _is_missing(v) else Decimal(v)
    )
    table = merged["total_revenue_table"].map(
        lambda v: Decimal(0) if _is_missing(v) else Decimal(v)
    )
    off = merged[(kafka - table).abs() > Decimal("0.005")]
    windows = merged["window_start"].nunique()
    if off.empty:
        return Measure(
            0, f"{len(merged)} (window, category) totals over {windows} windows equal Kafka's"
        )
    examples = "; ".join(
        f"{row.window_start.isoformat()} {row.category}: Kafka {_money(row.total_revenue_kafka)}, "
        f"table {_money(row.total_revenue_table)}"
        for row in off.head(DETAIL_EXAMPLES).itertuples()
    )
    return Measure(
        len(off),
        f"{len(off)} of {len(merged)} totals differ, e.g. {examples}. Purchases later than "
        "the watermark are left out by the stream (counted in the progress records); the "
        "backfill DAG recomputes such an interval",
    )


def dead_letter_measure(
    settings: Settings, keys: pd.DataFrame, source: InputSource, now: datetime, full: bool
) -> Measure:
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


def _money(value: Any) -> str:
    return "none" if _is_missing(value) else f"{Decimal(value):.2f}"


# ---------------------------------------------------------------- the run


def load_validated(settings: Settings) -> dict[str, int]:
    found = read_json(settings.quality_dir / VALIDATED_FILE, {})
    return {k: int(v) for k, v in found.items()} if isinstance(found, dict) else {}


def save_validated(settings: Settings, versions: Mapping[str, int]) -> None:
    write_json(settings.quality_dir / VALIDATED_FILE, dict(versions))


@dataclass(frozen=True)
class Target:
    """One table a run checks: a streaming sink table, or a backfill table."""

    label: str  # its name in reports, logs and GX: "revenue_by_category", "backfill/..."
    suite: TableSuite
    path: Path
    streamed: bool


def targets(settings: Settings, tables: Sequence[str] | None = None) -> list[Target]:
    """The sink tables (all, or ``tables``) and, for the analytics among them, their
    backfill tables when a backfill has written one."""
    suites = table_suites(settings)
    names = list(tables or suites)
    unknown = sorted(set(names) - set(suites))
    if unknown:
        raise ValueError(
            f"unknown table(s) {', '.join(unknown)}; the tables are: {', '.join(suites)}"
        )
    found = [Target(n, suites[n], settings.table_path(n), True) for n in names]
    for name in names:
        path = settings.backfill_table_path(name)
        if name in TIME_KEYS and path.exists():
            # A backfill is not a stream: freshness does not apply to it.
            suite = replace(
                suites[name],
                checks=tuple(
                    c for c in suites[name].checks if c.columns != (MINUTES_BEHIND_INPUT,)
                ),
                freshness_column=None,
            )
            found.append(Target(f"backfill/{name}", suite, path, False))
    return found


def run_quality(
    settings: Settings,
    source: InputSource,
    *,
    full: bool = False,
    tables: Sequence[str] | None = None,
    now: datetime | None = None,
    airflow: Mapping[str, Any] | None = None,
) -> RunReport:
    """Check the sink tables (all, or ``tables``), record the run, and return its report.

    Backfill tables are checked too, when they changed since their last check.  Raises
    :class:`NoDataYet` when no table has ``quality.min_rows`` rows yet.
    """
    chosen = targets(settings, tables)
    now = now or datetime.now(UTC)
    validated = {} if full else load_validated(settings)
    newest = source.newest(settings.events.naive_timezone)
    flow_minutes = settings.quality.freshness_minutes + settings.analytics.watermark_seconds / 60
    min_rows = max(settings.quality.min_rows, 1)

    slices: dict[str, TableSlice] = {}
    notes: dict[str, str] = {}
    for target in chosen:
        started = time.monotonic()
        piece = read_slice(target.path, target.suite, validated.get(target.label))
        if piece is None or len(piece.keys) < min_rows:
            notes[target.label] = f"fewer than {min_rows} committed row(s) yet"
        elif not target.streamed and piece.since == piece.version:
            notes[target.label] = f"unchanged since version {piece.version}, checked before"
        else:
            slices[target.label] = piece
            log.info(
                "%s: %d rows to check (of %d; version %s -> %d) read in %.1f s",
                target.label,
                len(piece.rows),
                len(piece.keys),
                piece.since,
                piece.version,
                time.monotonic() - started,
            )
    if not slices:
        raise NoDataYet(
            f"no table has {min_rows} committed row(s) yet, or none changed: "
            "waiting for the streaming job to close its first windows"
        )

    dead = read_table(settings.table_path(DEAD_LETTER_TABLE), ["source_partition", "source_offset"])
    quarantined = (
        set(zip(dead["source_partition"], dead["source_offset"], strict=True))
        if dead is not None
        else set()
    )

    context = gx_context(settings)
    reports = []
    for target in chosen:
        name, suite, piece = target.suite.table, target.suite, slices.get(target.label)
        if piece is None:
            since = validated.get(target.label)
            reports.append(
                TableReport(target.label, SKIPPED, 0, 0, (since, None), (), notes[target.label])
            )
            continue
        measures = {
            SCHEMA_DIFFERENCES: schema_measure(name, piece.schema),
            DUPLICATE_KEYS: duplicate_measure(name, piece.keys),
        }
        if target.streamed and suite.freshness_column:
            measures[MINUTES_BEHIND_INPUT] = freshness_measure(
                suite, piece.keys, newest, now, flow_minutes
            )
        if name == REVENUE_TABLE:
            # Incremental: the slice's windows in the whole table (a duplicate of one may
            # sit in an older file), read with only the columns reconciliation needs.
            whole = (
                piece.rows
                if piece.since is None
                else read_table(target.path, ["window_start", "category", "total_revenue"])
            )
            measures[RECONCILIATION_MISMATCHES] = reconciliation_measure(
                settings,
                whole,
                piece.rows.get("window_start", pd.Series(dtype=object)),
                source,
                quarantined,
            )
        if name == DEAD_LETTER_TABLE:
            measures[DEAD_LETTER_PERCENT] = dead_letter_measure(
                settings, piece.keys, source, now, full
            )
        checks = _validate_table(context, target.label, suite, piece, measures)
        statuses = {c.status for c in checks}
        status = FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
        versions = (piece.since, piece.version)
        reports.append(
            TableReport(target.label, status, len(piece.rows), len(piece.keys), versions, checks)
        )

    report = RunReport(
        run_id=uuid.uuid4().hex[:12],
        at=now.isoformat(),
        mode="full" if full else "incremental",
        tables=tuple(reports),
        report_path=_docs_index_path(context),
        airflow=dict(airflow or {}),
    )
    append_history(settings, report)
    versions = load_validated(settings)
    versions.update({label: piece.version for label, piece in slices.items()})
    save_validated(settings, versions)
    return report


def raise_for_failures(report: RunReport) -> None:
    """Raise :class:`DataQualityError` listing each failed ``fail`` check, or return."""
    failures = report.checks_with(FAIL)
    if not failures:
        return
    lines = [f"{len(failures)} data quality check(s) of severity 'fail' failed:"]
    lines += [f"  - {table}: {check.describe()}" for table, check in failures]
    lines.append(f"Data quality report: {report.report_path}")
    raise DataQualityError("\n".join(lines))


def append_history(settings: Settings, report: RunReport) -> Path:
    """Append one JSON line for ``report`` to the history file and return its path."""
    path = settings.quality_dir / HISTORY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(report.to_json_dict(), default=_json_default, sort_keys=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return path


def read_history(settings: Settings, limit: int | None = None) -> list[dict[str, Any]]:
    """The recorded runs, newest first (the last ``limit`` only, when given)."""
    path = settings.quality_dir / HISTORY_FILE
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue
    runs.reverse()
    return runs[:limit] if limit else runs


def _json_default(value: Any) -> Any:
    # Samples can hold Timestamps, Decimals or numpy numbers; NaN is written as null.
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)


# ---------------------------------------------------------------- GX plumbing


def _quiet_gx_logging() -> None:
    # GX logs dozens of INFO lines per run (and some at import); under Airflow's INFO
    # level they would drown the per-check lines the task log is meant to show.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def gx_context(settings: Settings) -> FileDataContext:
    """File-backed GX context under ``settings.quality_dir / "gx"``, created on first use."""
    _quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    settings.quality_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=settings.quality_dir)
    # tqdm bars would flood the Airflow task log; analytics stay off because scheduled
    # jobs on a laptop have no business phoning home.
    if context.variables.progress_bars is None or context.variables.analytics_enabled is not False:
        context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        context.variables.analytics_enabled = False
        context.variables.save()
    return context


def _batch_definition(context: FileDataContext, asset_name: str) -> Any:
    """Get-or-create the pandas datasource, dataframe asset and whole-frame batch definition."""
    try:
        datasource = context.data_sources.get(DATASOURCE_NAME)
    except KeyError:
        datasource = context.data_sources.add_pandas(name=DATASOURCE_NAME)
    try:
        asset = datasource.get_asset(asset_name)
    except LookupError:
        asset = datasource.add_dataframe_asset(name=asset_name)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION_NAME)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)


def _validate_table(
    context: FileDataContext,
    label: str,
    suite: TableSuite,
    piece: TableSlice,
    measures: Mapping[str, Measure],
) -> tuple[CheckResult, ...]:
    """Validate the row checks on the slice and the table checks on the measures."""
    parts = {TABLE: pd.DataFrame([{k: m.value for k, m in measures.items()}])}
    if not piece.rows.empty:
        parts[ROWS] = prepare_rows(piece.rows)
    results: list[CheckResult] = []
    for part, frame in parts.items():
        specs = [s for s in suite.on(part) if part == ROWS or s.columns[0] in measures]
        if specs:
            results += _run_checkpoint(
                context, f"{label.replace('/', '.')}.{part}", frame, specs, measures
            )
    order = {spec.name: index for index, spec in enumerate(suite.checks)}
    results.sort(key=lambda check: order.get(check.name, len(order)))
    return tuple(results)


def _run_checkpoint(
    context: FileDataContext,
    name: str,
    frame: pd.DataFrame,
    specs: Sequence[CheckSpec],
    measures: Mapping[str, Measure],
) -> list[CheckResult]:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    # The check's plain-words name travels in meta so results map back without relying
    # on the order GX returns them in.
    expectations = [
        getattr(gx.expectations, spec.expectation)(
            **spec.kwargs, meta={"check": spec.name, "severity": spec.severity}
        )
        for spec in specs
    ]
    # add_or_update everywhere: the suite follows the code (and settings) on every run.
    gx_suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=name, expectations=expectations)
    )
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=_batch_definition(context, name), suite=gx_suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[validation],
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE_NAME])],
            # SUMMARY carries unexpected counts plus a partial list of offending values.
            result_format=gx.ResultFormat.SUMMARY,
        )
    )
    result = checkpoint.run(
        batch_parameters={"dataframe": frame},
        run_id=gx.RunIdentifier(run_name=name, run_time=datetime.now(UTC)),
    )
    by_name = {spec.name: spec for spec in specs}
    checks = [
        _check_result(evr, by_name, measures)
        for suite_result in result.run_results.values()
        for evr in suite_result.results
    ]
    # If GX ever dropped a result, a silently shorter list would read as "all passed".
    missing = set(by_name) - {check.name for check in checks}
    checks += [
        CheckResult(
            n,
            by_name[n].severity,
            by_name[n].expectation,
            by_name[n].columns,
            False,
            error="no result returned",
        )
        for n in sorted(missing)
    ]
    return checks


def _check_result(
    evr: Any, specs_by_name: Mapping[str, CheckSpec], measures: Mapping[str, Measure]
) -> CheckResult:
    config = evr.expectation_config
    name = (config.meta or {}).get("check") or config.type
    spec = specs_by_name.get(name)
    columns = spec.columns if spec else ()
    result = evr.result or {}
    observed = result.get("observed_value")
    details = result.get("details") or {}
    mismatched = details.get("mismatched") if isinstance(details, dict) else None
    if mismatched:
        observed = {key: sorted(value) for key, value in mismatched.items() if value}
    measure = measures.get(columns[0]) if spec and spec.on == TABLE else None
    if measure is not None:
        observed = measure.value  # the measure itself, not GX's per-row view of it
    return CheckResult(
        name=name,
        severity=spec.severity if spec else FAIL,
        expectation=config.type,
        columns=columns,
        success=bool(evr.success),
        unexpected_count=result.get("unexpected_count"),
        observed_value=observed,
        sample=_distinct(result.get("partial_unexpected_list") or [])[:SAMPLE_SIZE],
        error=_exception_message(evr.exception_info),
        detail=measure.detail if measure is not None else None,
    )


def _exception_message(exception_info: Any) -> str | None:
    """First exception message from a GX result's ``exception_info``, if any.

    GX 1.x reports it in two shapes: a flat ``{"raised_exception": ..., ...}`` dict, or,
    when a metric failed (e.g. a missing column), a dict keyed by metric id whose values
    have that flat shape.
    """
    if not isinstance(exception_info, Mapping):
        return None
    candidates = [exception_info, *(v for v in exception_info.values() if isinstance(v, Mapping))]
    for info in candidates:
        if info.get("raised_exception") or info.get("exception_message"):
            message = str(info.get("exception_message") or "exception during evaluation")
            return message.strip().splitlines()[-1] if message.strip() else message
    return None


def _distinct(values: Sequence[Any]) -> list[Any]:
    # A duplicated key shows up once per copy; repeating it in the sample says nothing.
    seen: list[Any] = []
    for value in values:
        # NaN would land in history.jsonl as a bare NaN, which strict JSON readers reject.
        value = None if _is_missing(value) else value
        if value not in seen:
            seen.append(value)
    return seen


def _docs_index_path(context: FileDataContext) -> Path:
    sites = context.get_docs_sites_urls(site_name=DOCS_SITE_NAME, only_if_exists=False)
    url = sites[0]["site_url"] if sites else None
    if url and url.startswith("file:"):
        return Path(url2pathname(urlparse(url).path)).resolve()
    # Fall back to GX's default layout for a file context.
    return (
        Path(context.root_directory) / "uncommitted" / "data_docs" / DOCS_SITE_NAME / "index.html"
    ).resolve()


# ---------------------------------------------------------------- formatting


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _format_value(value: Any, columns: Sequence[str]) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{k}={_format_value(v, (k,))}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v, columns) for v in value) + "]"
    if isinstance(value, float):
        if any(column in DECIMAL_COLUMNS for column in columns):
            return f"{value:.2f}"  # money reads as money
        if value.is_integer():
            return str(int(value))
    return str(value)
