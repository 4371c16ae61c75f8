"""user_sessions with ``applyInPandasWithState``: the alternative to ``session_window``
that benchmarks/designs.py measures.  Same semantics (DESIGN.md section 3): a session
closes after ``session_gap_seconds`` without events and is emitted once the watermark has
passed its last event plus the gap.

State per user: the sessions not yet closed, as parallel arrays (start and end in
microseconds, event count, revenue in cents, viewed product ids joined by a separator).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from include.settings import AnalyticsSettings
from include.tables import SESSION_COLUMNS

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


def _sessions_function(gap_us: int):
    def update(
        key: tuple[str], frames: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        (user_id,) = key
        sessions: list[list] = []
        if state.exists:
            starts, ends, counts, cents, products = state.get
            sessions = [
                [s, e, c, r, set(p.split(SEPARATOR)) - {""}]
                for s, e, c, r, p in zip(starts, ends, counts, cents, products, strict=True)
            ]
        if not state.hasTimedOut:
            for frame in frames:
                micros = frame["event_time"].astype("int64") // 1000
                for at, event_type, product, revenue in zip(
                    micros, frame["event_type"], frame["product_id"], frame["revenue"], strict=True
                ):
                    cents = int(revenue * 100) if event_type == "purchase" else 0
                    viewed = {product} if event_type == "page_view" else set()
                    sessions.append([int(at), int(at), 1, cents, viewed])
        sessions = _merge(sessions, gap_us)
        watermark_us = state.getCurrentWatermarkMs() * 1000
        closed = [s for s in sessions if s[1] + gap_us <= watermark_us]
        still_open = [s for s in sessions if s[1] + gap_us > watermark_us]
        if still_open:
            state.update(
                (
                    [s[0] for s in still_open],
                    [s[1] for s in still_open],
                    [s[2] for s in still_open],
                    [s[3] for s in still_open],
                    [SEPARATOR.join(sorted(s[4])) for s in still_open],
                )
            )
            # Fires once the watermark passes the earliest session's end plus the gap.
            state.setTimeoutTimestamp(-(-(min(s[1] for s in still_open) + gap_us) // 1000))
        else:
            state.remove()
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

    return update


def user_sessions_with_state(events: DataFrame, analytics: AnalyticsSettings) -> DataFrame:
    """De-duplicated, watermarked events -> closed sessions (SESSION_COLUMNS)."""
    gap_us = analytics.session_gap_seconds * 1_000_000
    sessions = (
        events.select("user_id", "event_time", "event_type", "product_id", "revenue")
        .groupBy("user_id")
        .applyInPandasWithState(
            _sessions_function(gap_us),
            OUTPUT_SCHEMA,
            STATE_SCHEMA,
            "append",
            GroupStateTimeout.EventTimeTimeout,
        )
    )
    return sessions.select(*(F.col(c) for c in SESSION_COLUMNS))
