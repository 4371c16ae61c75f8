"""Data quality checks for the analytics tables, run with Great Expectations (GX Core 1.x).

The checks are a small declarative list (:func:`revenue_checks`) turned into a GX
ExpectationSuite at run time.  :func:`run_revenue_checks` validates the Delta table
``revenue_by_category`` (or a frame handed in by tests) through a file-backed GX context
under ``settings.quality_dir``, so the HTML Data Docs land at a stable path, and appends
one JSON line per run to ``settings.quality_dir / "history.jsonl"``.

Outcomes the caller (the ``data_quality`` DAG) distinguishes:

* :class:`NoDataYet` -- the table is missing or still too small; a skip, not a failure.
* a :class:`QualityReport` -- pass it to :func:`raise_for_failures`, which raises
  :class:`DataQualityError` naming every failing check in plain words.

``great_expectations`` is imported inside functions only: the import takes seconds and
Airflow parses the DAG file that imports this module far more often than it runs it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from include.settings import Settings
from include.tables import REVENUE_COLUMNS, REVENUE_TABLE, read_table

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

# decimal(18,2) arrives from Delta as Python Decimal objects in an object column; GX's
# pandas metrics compare against float bounds, so these are cast before validation.
DECIMAL_COLUMNS: tuple[str, ...] = ("total_revenue", "avg_order_value")
# Derived before validation: GX has no "difference of two columns" expectation.
WINDOW_LENGTH_COLUMN = "window_length_seconds"

# Names of the GX objects inside the context; fixed so re-runs update rather than pile up.
GX_DIR_NAME = "gx"
DATASOURCE_NAME = "analytics_frames"
BATCH_DEFINITION_NAME = "whole_table"
DOCS_SITE_NAME = "local_site"
HISTORY_FILE = "history.jsonl"
SAMPLE_SIZE = 3


class NoDataYet(Exception):
    """The table to check does not exist yet or has too few rows: skip, don't fail."""


class DataQualityError(Exception):
    """At least one data quality check failed."""


@dataclass(frozen=True)
class CheckSpec:
    """One check, declared as data: a plain-words name plus a GX Core expectation."""

    name: str
    expectation: str  # class name in great_expectations.expectations
    kwargs: Mapping[str, Any]

    @property
    def columns(self) -> tuple[str, ...]:
        if "column" in self.kwargs:
            return (self.kwargs["column"],)
        if "column_list" in self.kwargs:
            return tuple(self.kwargs["column_list"])
        return ()


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check, reduced to what a log line or an alert needs."""

    name: str
    expectation: str  # GX expectation type, e.g. "expect_column_values_to_be_between"
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int | None = None
    observed_value: Any = None
    sample: list[Any] = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        """One plain-words line, e.g. ``total_revenue >= 0: 3 rows violate (sample: -5.00)``."""
        if self.error:
            return f"{self.name}: could not be evaluated ({self.error})"
        if self.unexpected_count is not None:
            if self.success:
                return f"{self.name}: ok"
            rows = "row violates" if self.unexpected_count == 1 else "rows violate"
            text = f"{self.name}: {self.unexpected_count} {rows}"
            shown = [_format_value(v, self.columns) for v in self.sample if not _is_missing(v)]
            if shown:
                text += f" (sample: {', '.join(shown)})"
            return text
        if self.success:
            return f"{self.name}: ok"
        return f"{self.name}: observed {_format_value(self.observed_value, self.columns)}"


@dataclass(frozen=True)
class QualityReport:
    """Result of one validation run of one table."""

    table: str
    success: bool
    row_count: int
    checks: tuple[CheckResult, ...]
    report_path: Path  # absolute path of the Data Docs index.html
    run_time: str  # ISO-8601 UTC

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if not check.success)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.run_time,
            "table": self.table,
            "success": self.success,
            "row_count": self.row_count,
            "report_path": str(self.report_path),
            "checks": [asdict(check) for check in self.checks],
        }


def revenue_checks(window_seconds: int) -> tuple[CheckSpec, ...]:
    """The checks for ``revenue_by_category``; the window length comes from settings."""
    return (
        CheckSpec(
            "window_start is not null", "ExpectColumnValuesToNotBeNull", {"column": "window_start"}
        ),
        CheckSpec(
            "window_end is not null", "ExpectColumnValuesToNotBeNull", {"column": "window_end"}
        ),
        CheckSpec("category is not null", "ExpectColumnValuesToNotBeNull", {"column": "category"}),
        CheckSpec(
            "total_revenue >= 0",
            "ExpectColumnValuesToBeBetween",
            {"column": "total_revenue", "min_value": 0},
        ),
        CheckSpec(
            "purchase_count >= 1",
            "ExpectColumnValuesToBeBetween",
            {"column": "purchase_count", "min_value": 1},
        ),
        CheckSpec(
            "avg_order_value >= 0",
            "ExpectColumnValuesToBeBetween",
            {"column": "avg_order_value", "min_value": 0},
        ),
        CheckSpec(
            f"window_end - window_start = {window_seconds}s",
            "ExpectColumnValuesToBeInSet",
            {"column": WINDOW_LENGTH_COLUMN, "value_set": [window_seconds]},
        ),
        CheckSpec(
            "(window_start, category) is unique",
            "ExpectCompoundColumnsToBeUnique",
            {"column_list": ["window_start", "category"]},
        ),
        CheckSpec(
            "columns are exactly " + ", ".join(REVENUE_COLUMNS),
            "ExpectTableColumnsToMatchSet",
            # The derived column is part of the validated frame, so it belongs in the set.
            {"column_set": [*REVENUE_COLUMNS, WINDOW_LENGTH_COLUMN], "exact_match": True},
        ),
    )


def load_revenue_frame(settings: Settings) -> pd.DataFrame:
    """Read the committed state of the Delta table, or raise :class:`NoDataYet`."""
    path = settings.table_path(REVENUE_TABLE)
    frame = read_table(path)
    if frame is None:
        raise NoDataYet(
            f"Delta table {REVENUE_TABLE} does not exist yet at {path}: "
            "waiting for the Spark streaming job to commit its first window"
        )
    return frame


def prepare_revenue_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` shaped for the suite: decimals as floats, window length added."""
    prepared = frame.copy()
    for column in DECIMAL_COLUMNS:
        if column in prepared.columns:
            prepared[column] = prepared[column].astype("float64")
    # When a window column is missing the derived column is left out too: the column-set
    # check then names the real culprit instead of a confusing window-length failure.
    if {"window_start", "window_end"} <= set(prepared.columns):
        length = pd.to_datetime(prepared["window_end"], utc=True) - pd.to_datetime(
            prepared["window_start"], utc=True
        )
        prepared[WINDOW_LENGTH_COLUMN] = length.dt.total_seconds()
    return prepared


def run_revenue_checks(settings: Settings, frame: pd.DataFrame | None = None) -> QualityReport:
    """Validate ``revenue_by_category`` and record the run.

    Reads the Delta table unless ``frame`` is given.  Raises :class:`NoDataYet` when the
    table is missing or has fewer than ``settings.quality.min_rows`` rows.
    """
    if frame is None:
        frame = load_revenue_frame(settings)
    row_count = len(frame)
    if row_count < settings.quality.min_rows:
        raise NoDataYet(
            f"{REVENUE_TABLE} has {row_count} committed rows, fewer than the "
            f"{settings.quality.min_rows} required (quality.min_rows): waiting for more windows"
        )

    specs = revenue_checks(settings.analytics.revenue_window_seconds)
    report = _validate(
        settings=settings,
        table=REVENUE_TABLE,
        frame=prepare_revenue_frame(frame),
        specs=specs,
        row_count=row_count,
    )
    append_history(settings, report)
    return report


def raise_for_failures(report: QualityReport) -> None:
    """Raise :class:`DataQualityError` listing each failing check, or return if all passed."""
    failures = report.failures
    if report.success and not failures:
        return
    lines = [
        f"Data quality checks failed for {report.table} "
        + f"({len(failures)} of {len(report.checks)} checks, {report.row_count} rows):"
    ]
    lines += [f"  - {check.describe()}" for check in failures]
    lines.append(f"Data quality report: {report.report_path}")
    raise DataQualityError("\n".join(lines))


def append_history(settings: Settings, report: QualityReport) -> Path:
    """Append one JSON line for ``report`` to the history file and return its path."""
    path = settings.quality_dir / HISTORY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # default=str: samples can hold Timestamps or Decimals; a readable string is enough.
    line = json.dumps(report.to_json_dict(), default=str, sort_keys=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return path


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
    # tqdm bars would flood the Airflow task log every five minutes; analytics stay off
    # because scheduled jobs on a laptop have no business phoning home.
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


def _validate(
    settings: Settings,
    table: str,
    frame: pd.DataFrame,
    specs: Sequence[CheckSpec],
    row_count: int,
) -> QualityReport:
    context = gx_context(settings)
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    batch_definition = _batch_definition(context, table)

    # The check's plain-words name travels in meta so results map back without relying
    # on the order GX returns them in.
    expectations = [
        getattr(gx.expectations, spec.expectation)(**spec.kwargs, meta={"check": spec.name})
        for spec in specs
    ]
    # add_or_update everywhere: the suite follows the code (and settings) on every run,
    # and a second run against the same directory must not fail on "already exists".
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=f"{table}_suite", expectations=expectations)
    )
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{table}_validation", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{table}_checkpoint",
            validation_definitions=[validation],
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE_NAME])],
            # SUMMARY carries unexpected counts plus a partial list of offending values.
            result_format=gx.ResultFormat.SUMMARY,
        )
    )

    run_time = datetime.now(UTC)
    result = checkpoint.run(
        batch_parameters={"dataframe": frame},
        run_id=gx.RunIdentifier(run_name=f"{table}_quality", run_time=run_time),
    )

    by_name = {spec.name: spec for spec in specs}
    checks: list[CheckResult] = []
    for suite_result in result.run_results.values():
        for evr in suite_result.results:
            checks.append(_check_result(evr, by_name))
    # If GX ever dropped a result, a silently shorter list would read as "all passed".
    missing = set(by_name) - {check.name for check in checks}
    checks += [
        CheckResult(
            name,
            by_name[name].expectation,
            by_name[name].columns,
            False,
            error="no result returned",
        )
        for name in sorted(missing)
    ]

    # GX returns results grouped by metric, not in suite order; logs read better in spec order.
    order = {spec.name: index for index, spec in enumerate(specs)}
    checks.sort(key=lambda check: order.get(check.name, len(order)))

    return QualityReport(
        table=table,
        success=bool(result.success) and all(check.success for check in checks),
        row_count=row_count,
        checks=tuple(checks),
        report_path=_docs_index_path(context),
        run_time=run_time.isoformat(),
    )


def _check_result(evr: Any, specs_by_name: Mapping[str, CheckSpec]) -> CheckResult:
    config = evr.expectation_config
    name = (config.meta or {}).get("check") or config.type
    spec = specs_by_name.get(name)
    columns = spec.columns if spec else ()
    result = evr.result or {}

    error = _exception_message(evr.exception_info)

    observed = result.get("observed_value")
    details = result.get("details") or {}
    mismatched = details.get("mismatched") if isinstance(details, dict) else None
    if mismatched:
        # Column-set check: the mismatch says more than the full observed list does.
        observed = {key: sorted(value) for key, value in mismatched.items() if value}

    return CheckResult(
        name=name,
        expectation=config.type,
        columns=columns,
        success=bool(evr.success),
        unexpected_count=result.get("unexpected_count"),
        observed_value=observed,
        sample=_distinct(result.get("partial_unexpected_list") or [])[:SAMPLE_SIZE],
        error=error,
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
