"""The one streaming query: every analytic and the dead letters as branches of one plan.

Pure DataFrame functions like :mod:`spark_jobs.transforms`: no I/O, no session creation.
:func:`pipeline_rows` reads the parsed records of :func:`spark_jobs.validation.parse_events`
once, sets the event-time watermark once (on the events *and* the control records of
:mod:`include.streaming.idle_close`, which then leave the stream: :func:`analytic_branch`),
and unions one branch per output into one shape:

``output``
    the output's name (``include.analytics.OUTPUTS``);
``key``, ``value``
    the Kafka record of the row (binary; deterministic key, the row as JSON);
``<output>``
    one struct column per output with the row in its table's columns, null in the rows of
    the other outputs.

One query means one offset log, one planning and one Spark job per micro-batch whatever the
number of outputs.  Spark still plans each branch from the source (a plan is a tree: a
branch cannot read another's rows), so each branch reads and parses the batch's records and
keeps its own de-duplication state; :func:`branch_operators` says which of the query's
stateful operators belong to which output, for the per-output progress records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from include.analytics import ANALYTICS, DEAD_LETTERS, OUTPUTS, Analytic
from include.settings import Settings
from include.settings.sections import AnalyticsSettings
from spark_jobs.output_topics import kafka_key_value
from spark_jobs.transforms import (
    analytic_rows,
    deduplicate,
    transform_of,
    with_watermark,
)
from spark_jobs.validation import EVENT_COLUMNS, dead_letters, timed_records

OUTPUT_COLUMN = "output"


def without_controls(records: DataFrame) -> DataFrame:
    """The events among timed records (event columns only)."""
    return records.filter(~F.col("control")).select(*EVENT_COLUMNS)


def analytic_branch(
    analytic: Analytic, timed: DataFrame, analytics: AnalyticsSettings
) -> DataFrame:
    """An analytic's rows from the watermarked events and control records.

    Spark pushes a filter that does not read the event time below the watermark, so a
    filter on ``control`` right after it would hide the control records from the watermark.
    They leave after the de-duplication instead (which no filter passes); an analytic that
    de-duplicates itself after its own filters (click_to_purchase) never sees them, and the
    query's watermark is the largest of its branches' (``multipleWatermarkPolicy = max``,
    spark_jobs.session): every branch reads the same records.
    """
    if analytic.deduplicates:
        return analytic_rows(analytic, without_controls(timed), analytics)
    events = without_controls(deduplicate(timed))
    return transform_of(analytic)(events, analytics).select(*analytic.columns)


def branches(parsed: DataFrame, settings: Settings, outputs: Sequence[str]) -> dict[str, DataFrame]:
    """One frame per output asked for, in ``OUTPUTS`` order: ``output``, ``key``, ``value``
    and the row as the struct column named after the output."""
    timed = with_watermark(timed_records(parsed), settings.analytics.watermark_seconds)
    frames: dict[str, DataFrame] = {}
    for analytic in ANALYTICS:
        if analytic.name not in outputs:
            continue
        rows = analytic_branch(analytic, timed, settings.analytics)
        frames[analytic.name] = rows.select(
            F.lit(analytic.name).alias(OUTPUT_COLUMN),
            *kafka_key_value(rows, analytic.keys),
            F.struct(*analytic.columns).alias(analytic.name),
        )
    if DEAD_LETTERS.name in outputs:
        # Nothing below the size limit is ever truncated in the dead-letter message.
        dead = dead_letters(parsed, max_raw_bytes=settings.events.max_event_bytes)
        frames[DEAD_LETTERS.name] = dead.select(
            F.lit(DEAD_LETTERS.name).alias(OUTPUT_COLUMN),
            "key",
            "value",
            F.struct(*DEAD_LETTERS.columns).alias(DEAD_LETTERS.name),
        )
    return frames


def union(frames: dict[str, DataFrame]) -> DataFrame:
    """The branches as one frame: every output's struct column, null where another output's
    row stands."""
    result: DataFrame | None = None
    for frame in frames.values():
        result = frame if result is None else result.unionByName(frame, allowMissingColumns=True)
    if result is None:
        raise ValueError("no output asked for")
    return result


def pipeline_rows(parsed: DataFrame, settings: Settings, outputs: Sequence[str]) -> DataFrame:
    """The one query's rows for the outputs asked for (module docstring)."""
    return union(branches(parsed, settings, outputs))


# Logical operators that keep state in a streaming plan (a stream-stream join, a streaming
# aggregation, a de-duplication): one entry each in a progress record's stateOperators.
STATEFUL_LOGICAL = frozenset({"Aggregate", "Deduplicate", "DeduplicateWithinWatermark", "Join"})


def _count_stateful(plan: Any) -> int:
    """Stateful operators in a logical plan (a py4j handle), whole tree."""
    count = 1 if plan.getClass().getSimpleName() in STATEFUL_LOGICAL else 0
    children = plan.children()
    return count + sum(_count_stateful(children.apply(i)) for i in range(children.size()))


def branch_operators(frames: dict[str, DataFrame]) -> dict[str, int]:
    """How many stateful operators each branch has, in branch order.  Spark numbers a
    query's stateful operators depth first through the union's branches, in order, so the
    query's ``stateOperators`` are these counts laid end to end."""
    return {
        name: _count_stateful(frame._jdf.queryExecution().analyzed())
        for name, frame in frames.items()
    }


def outputs_in_order(names: Sequence[str]) -> list[str]:
    """The outputs asked for, each once, in ``OUTPUTS`` order."""
    wanted = set(names)
    return [o.name for o in OUTPUTS if o.name in wanted]
