"""Great Expectations (GX Core 1.x) as the quality checks use it: a file-backed context,
one suite and checkpoint per table part, and the results read back as check results.

The context lives under ``settings.paths.quality_dir / "gx"``, so the HTML Data Docs land at a
stable path the report pages serve.  Each table is validated in two parts: its rows (the
row checks of :mod:`include.quality.checks`) and a one-row frame of its table-level
measures (the table checks); suites follow the code and settings on every run.

``great_expectations`` is imported inside functions only: the import takes seconds and
Airflow parses the DAG file that imports the quality code far more often than it runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from include.quality.checks import FAIL, ROWS, TABLE, CheckSpec, TableSuite
from include.quality.formatting import is_missing
from include.quality.measures import Measure
from include.quality.report import CheckResult
from include.quality.slices import TableSlice, prepare_rows
from include.settings import Settings

if TYPE_CHECKING:
    from great_expectations.data_context import FileDataContext

GX_DIR_NAME = "gx"
DATASOURCE_NAME = "analytics_frames"
BATCH_DEFINITION_NAME = "whole_frame"
DOCS_SITE_NAME = "local_site"
SAMPLE_SIZE = 3


def _quiet_gx_logging() -> None:
    # GX logs dozens of INFO lines per run (and some at import); under Airflow's INFO
    # level they would drown the per-check lines the task log is meant to show.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def gx_context(settings: Settings) -> FileDataContext:
    """File-backed GX context under ``settings.paths.quality_dir / "gx"``, created on first use."""
    _quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    settings.paths.quality_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=settings.paths.quality_dir)
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
        datasource: Any = context.data_sources.get(DATASOURCE_NAME)
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


def validate_table(
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
        value = None if is_missing(value) else value
        if value not in seen:
            seen.append(value)
    return seen


def docs_index_path(context: FileDataContext) -> Path:
    """Absolute path of the Data Docs' index.html, where the run's report is."""
    sites = context.get_docs_sites_urls(site_name=DOCS_SITE_NAME, only_if_exists=False)
    url = sites[0]["site_url"] if sites else None
    if url and url.startswith("file:"):
        return Path(url2pathname(urlparse(url).path)).resolve()
    # Fall back to GX's default layout for a file context.
    return (
        Path(context.root_directory) / "uncommitted" / "data_docs" / DOCS_SITE_NAME / "index.html"
    ).resolve()
