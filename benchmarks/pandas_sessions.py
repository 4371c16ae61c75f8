"""user_sessions with ``transformWithStateInPandas``: the alternative to ``session_window``
that benchmarks/designs.py measures.  Same semantics (docs/DESIGN.md, "Analytics"): a session
closes after ``session_gap_seconds`` without events and is emitted once the watermark has
passed its last event plus the gap.

(``applyInPandasWithState`` was the first candidate; with pyspark 4.0.4 and pyarrow 26 its
deserializer fails, ``RecordBatch.slice`` given a float offset.)

State per user: the sessions not yet closed, as parallel arrays (start and end in
microseconds, event count, revenue in cents, viewed product ids joined by a separator).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.stateful_processor import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)

from include.analytics import USER_SESSIONS
from include.settings.sections import AnalyticsSettings

STATE_SCHEMA = (
    "starts array<long>, ends array<long>, counts array<long>, cents array<long>, "
    "products array<string>"
)
OUTPUT_SCHEMA = (
    "user_id string, session_start timestamp, session_end timestamp, duration_seconds double, "
    "event_count long, total_revenue decimal(18,2), unique_products long"
)
SEPARATOR = "\x1f"


def _merge(sessions: list[list], gap_us: int) -> list[list]:
    """Sessions (and single events as one-event sessions) merged where less than the gap
    apart: [start, end, count, cents, products]."""
    merged: list[list] = []
    for session in sorted(sessions, key=lambda s: s[0]):
        if merged and session[0] < merged[-1][1] + gap_us:
            last = merged[-1]
            last[1] = max(last[1], session[1])
            last[2] += session[2]
            last[3] += session[3]
            last[4] |= session[4]
        else:
            merged.append([session[0], session[1], session[2], session[3], set(session[4])])
    return merged


class SessionProcessor(StatefulProcessor):
    """Per user: the open sessions in a value state, an event-time timer at the earliest
    moment one of them can close."""

    def __init__(self, gap_us: int) -> None:
        self.gap_us = gap_us

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.open_sessions = handle.getValueState("open_sessions", STATE_SCHEMA)

    def _load(self) -> list[list]:
        if not self.open_sessions.exists():
            return []
        starts, ends, counts, cents, products = self.open_sessions.get()
        return [
            [s, e, c, r, set(p.split(SEPARATOR)) - {""}]
            for s, e, c, r, p in zip(starts, ends, counts, cents, products, strict=True)
        ]

    def _settle(self, user_id: str, sessions: list[list], watermark_ms: int):
        sessions = _merge(sessions, self.gap_us)
        watermark_us = watermark_ms * 1000
        closed = [s for s in sessions if s[1] + self.gap_us <= watermark_us]
        still_open = [s for s in sessions if s[1] + self.gap_us > watermark_us]
        for timer in list(self.handle.listTimers()):
            self.handle.deleteTimer(timer)
        if still_open:
            self.open_sessions.update(
                (
                    [s[0] for s in still_open],
                    [s[1] for s in still_open],
                    [s[2] for s in still_open],
                    [s[3] for s in still_open],
                    [SEPARATOR.join(sorted(s[4])) for s in still_open],
                )
            )
            # Fires once the watermark reaches the earliest session's end plus the gap.
            self.handle.registerTimer(-(-(min(s[1] for s in still_open) + self.gap_us) // 1000))
        else:
            self.open_sessions.clear()
        if closed:
            yield pd.DataFrame(
                {
                    "user_id": user_id,
                    "session_start": pd.to_datetime([s[0] for s in closed], unit="us"),
                    "session_end": pd.to_datetime([s[1] for s in closed], unit="us"),
                    "duration_seconds": [(s[1] - s[0]) / 1_000_000 for s in closed],
                    "event_count": [s[2] for s in closed],
                    "total_revenue": [Decimal(s[3]).scaleb(-2) for s in closed],
                    "unique_products": [len(s[4]) for s in closed],
                }
            )

    def handleInputRows(
        self, key: Any, rows: Iterator[pd.DataFrame], timerValues: TimerValues
    ) -> Iterator[pd.DataFrame]:
        (user_id,) = key
        sessions = self._load()
        for frame in rows:
            micros = frame["event_time"].astype("int64") // 1000
            for at, event_type, product, revenue in zip(
                micros, frame["event_type"], frame["product_id"], frame["revenue"], strict=True
            ):
                cents = int(revenue * 100) if event_type == "purchase" else 0
                viewed = {product} if event_type == "page_view" else set()
                sessions.append([int(at), int(at), 1, cents, viewed])
        yield from self._settle(user_id, sessions, timerValues.getCurrentWatermarkInMs())

    def handleExpiredTimer(
        self, key: Any, timerValues: TimerValues, expiredTimerInfo: ExpiredTimerInfo
    ) -> Iterator[pd.DataFrame]:
        (user_id,) = key
        yield from self._settle(user_id, self._load(), timerValues.getCurrentWatermarkInMs())

    def close(self) -> None:
        pass


def user_sessions_with_state(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """De-duplicated, watermarked events -> closed sessions (USER_SESSIONS.columns)."""
    sessions = (
        events.select("user_id", "event_time", "event_type", "product_id", "revenue")
        .groupBy("user_id")
        .transformWithStateInPandas(
            statefulProcessor=SessionProcessor(analytics.session_gap_seconds * 1_000_000),
            outputStructType=OUTPUT_SCHEMA,
            outputMode="Append",
            timeMode="EventTime",
        )
    )
    return sessions.select(*(F.col(c) for c in USER_SESSIONS.columns))
