"""Event-to-output latency of the analytics' rows: what it means and how it is computed.

An analytic row cannot appear before the event that makes it final has arrived:

* a window row (revenue_by_category, high_value_users, conversion_funnel) is final once
  the watermark passes its end, i.e. once an event stamped ``window_end + watermark`` has
  been read;
* a session row once the watermark passes ``session_end + gap``;
* a click_to_purchase row once its purchase has been read (the click came first).

The benchmark producer stamps every event with the wall clock at send time, so the row's
``final_at`` is also the wall time its closing event was sent.  Latency is then
``visible_at - final_at``: the time the platform itself adds (trigger wait, micro-batch
processing, the commit), not the window length or the watermark delay, which are
semantics the user chose.  ``visible_at`` is the Kafka record's timestamp in the output
topic (the time Spark's producer created it) or the Delta commit time of the table
version that added the row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from include.analytics import ANALYTIC_NAMES, BY_NAME, CLICK_TO_PURCHASE, USER_SESSIONS
from include.contract import parse_utc
from include.kafka.client import read_to_end
from include.settings import Settings
from include.settings.sections import AnalyticsSettings


def final_at(analytic: str, row: dict, analytics: AnalyticsSettings) -> float:
    """Epoch seconds at which `row` became final by event time (see the module doc)."""
    delay = analytics.watermark_seconds
    if BY_NAME[analytic].windowed:
        return _epoch(row["window_end"]) + delay
    if analytic == USER_SESSIONS.name:
        return _epoch(row["session_end"]) + analytics.session_gap_seconds + delay
    if analytic == CLICK_TO_PURCHASE.name:
        return _epoch(row["purchase_time"])
    raise ValueError(f"no latency definition for {analytic}")


def _epoch(value: str | datetime) -> float:
    """A row's time as epoch seconds: JSON text from the topic, a datetime from the
    table (naive means UTC, the session time zone)."""
    moment = parse_utc(value) if isinstance(value, str) else value
    if moment is None:
        raise ValueError(f"not a time: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class Percentiles:
    """How many rows, and their latency's p50, p95 and p99 in seconds (None: no rows)."""

    rows: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None = None

    @classmethod
    def of(cls, latencies: list[float]) -> Percentiles:
        """The percentiles of a run's latencies (linear interpolation, numpy's default)."""
        if not latencies:
            return cls(0, None, None, None)
        p50, p95, p99 = (round(float(v), 3) for v in np.percentile(latencies, [50, 95, 99]))
        return cls(len(latencies), p50, p95, p99, round(max(latencies), 3))


def latencies(
    analytic: str,
    rows: Iterable[tuple[dict, float]],
    analytics: AnalyticsSettings,
    since: float,
    until: float = math.inf,
) -> list[float]:
    """Seconds from final to visible for every (row, visible_at) whose final_at lies in
    [since, until]: rows closed by events sent before the measured run began are left out,
    and so are rows only the idle rule closed after the input stopped at `until`
    (:func:`idle_latencies` measures those)."""
    found = []
    for row, visible_at in rows:
        closed = final_at(analytic, row, analytics)
        if since <= closed <= until:
            found.append(visible_at - closed)
    return found


def idle_latencies(
    analytic: str,
    rows: Iterable[tuple[dict, float]],
    analytics: AnalyticsSettings,
    stopped: float,
) -> list[float]:
    """Rows the idle rule closed once the input stopped at `stopped` (their final_at is
    later): seconds from the moment the rule made each final to visible.  Event time
    follows the clock from ``stopped + idle_close_seconds`` on (include/streaming/idle_close.py), so
    a row is final then, or at its own final_at if that is later."""
    found = []
    for row, visible_at in rows:
        closed = final_at(analytic, row, analytics)
        if closed > stopped:
            found.append(visible_at - max(closed, stopped + analytics.idle_close_seconds))
    return found


def topic_rows(records: Iterable) -> Iterator[tuple[dict, float]]:
    """(row, visible_at) of Kafka records of an output topic: the value is the row as
    JSON, the record timestamp (ms) the moment Spark's producer created it."""
    for record in records:
        yield json.loads(record.value), record.timestamp / 1000


def table_rows(table: Path) -> Iterator[tuple[dict, float]]:
    """(row, visible_at) of a Delta table: every row of every file a commit added, at that
    commit's timestamp (when readers could first see it)."""
    for entry in sorted((table / "_delta_log").glob("*.json")):
        added, committed_ms = [], None
        for line in entry.read_text(encoding="utf-8").splitlines():
            action = json.loads(line)
            if "add" in action:
                added.append(action["add"]["path"])
            elif "commitInfo" in action:
                committed_ms = action["commitInfo"]["timestamp"]
        if committed_ms is None:
            continue
        for path in added:
            for row in pq.read_table(table / path).to_pylist():
                yield row, committed_ms / 1000


def worst_p95(run: dict, where: str, figure: str = "p95") -> float | None:
    """The slowest analytic's p95 (or another `figure`) in a latency run's results, where =
    "topic", "table", "idle_topic" or "idle_table"."""
    found = [
        a[where][figure]
        for a in run.get("analytics", {}).values()
        if where in a and a[where].get(figure) is not None
    ]
    return max(found, default=None)


def measured(
    settings: Settings, since: float, until: float = math.inf, idle: bool = False
) -> dict[str, dict[str, dict]]:
    """Per analytic, the percentiles of its rows closed in [since, until], as visible in its
    output topic and in its sink table (no table yet: no rows); with `idle`, also those of
    the rows the idle rule closed after `until` ("idle_topic", "idle_table")."""
    found = {}
    for analytic in ANALYTIC_NAMES:
        topic = read_to_end(settings.bootstrap_servers, settings.output_topic(analytic))
        table = settings.paths.table_path(analytic)
        in_table = list(table_rows(table)) if table.exists() else []
        sides = (("topic", list(topic_rows(topic))), ("table", in_table))
        a = settings.analytics
        found[analytic] = {
            where: asdict(Percentiles.of(latencies(analytic, rows, a, since, until)))
            for where, rows in sides
        }
        if idle:
            found[analytic] |= {
                f"idle_{where}": asdict(Percentiles.of(idle_latencies(analytic, rows, a, until)))
                for where, rows in sides
            }
    return found
