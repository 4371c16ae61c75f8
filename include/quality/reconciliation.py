"""Revenue reconciled against Kafka: the revenue table's totals against the same totals
recomputed from the purchases on the input topic.

:func:`expected_revenue` recomputes revenue per sliding window and category from raw
input records in plain Python, independently of the Spark job, so the reconciliation
check compares two separate computations.  An incremental run reconciles the windows of
the rows it reads, each in full (a duplicate of one may sit in an older file).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from include.contract import PURCHASE, money, parse_utc
from include.quality.formatting import is_missing
from include.quality.measures import DETAIL_EXAMPLES, Measure
from include.quality.source import InputSource, SourceRecord
from include.settings import Settings


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
    kafka = merged["total_revenue_kafka"].map(lambda v: Decimal(0) if is_missing(v) else Decimal(v))
    table = merged["total_revenue_table"].map(lambda v: Decimal(0) if is_missing(v) else Decimal(v))
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


def _money(value: Any) -> str:
    return "none" if is_missing(value) else f"{Decimal(value):.2f}"


def _revenue(value: object) -> Decimal | None:
    """Revenue in cents, half up (float noise such as 3899.9700000000003 is not money)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return money(value)
    except InvalidOperation:
        return None


def expected_revenue(
    records: Iterable[SourceRecord],
    quarantined: set[tuple[int, int]],
    window_seconds: int,
    slide_seconds: int,
    naive_zone: str = "UTC",
) -> pd.DataFrame:
    """Revenue per (window_start, category) over the purchases in ``records``.

    A record the pipeline quarantined (its (partition, offset) is in ``quarantined``) is left
    out; so is a second record with an already seen event_id (retries, replays).  Windows
    are [start, start + window) every ``slide_seconds``, aligned to the epoch, as Spark's;
    a zone-less timestamp is the wall-clock time of ``naive_zone``.
    """
    totals: dict[tuple[datetime, str], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    seen: set[object] = set()
    window, slide = timedelta(seconds=window_seconds), slide_seconds
    for record in records:
        if (record.partition, record.offset) in quarantined or record.value is None:
            continue
        try:
            event = json.loads(record.value)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("event_type") != PURCHASE:
            continue
        event_id, moment = event.get("event_id"), parse_utc(event.get("timestamp"), naive_zone)
        revenue, category = _revenue(event.get("revenue")), event.get("category")
        if moment is None or revenue is None or not isinstance(category, str):
            continue
        if event_id in seen:
            continue
        seen.add(event_id)
        epoch = int(moment.timestamp())
        start = epoch - epoch % slide
        while datetime.fromtimestamp(start, UTC) + window > moment:
            key = (datetime.fromtimestamp(start, UTC), category)
            totals[key] += revenue
            counts[key] += 1
            start -= slide
    rows = [
        {
            "window_start": key[0],
            "category": key[1],
            "total_revenue": total,
            "purchases": counts[key],
        }
        for key, total in totals.items()
    ]
    frame = pd.DataFrame(rows, columns=["window_start", "category", "total_revenue", "purchases"])
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    return frame
