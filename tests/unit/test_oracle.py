"""The oracle itself is checked on hand-worked cases, so a wrong oracle cannot hide a bug."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from include.settings import AnalyticsSettings
from tests.oracle import expected_revenue_by_category, sliding_windows

UTC = UTC


def test_a_moment_on_a_boundary_belongs_to_the_window_starting_there():
    starts = sliding_windows(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), 60, 30)
    assert starts == [
        datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
    ]


def test_hand_worked_revenue():
    def purchase(eid, ts, category, revenue):
        return {
            "event_id": eid,
            "event_type": "purchase",
            "timestamp": ts,
            "category": category,
            "revenue": revenue,
        }

    events = [
        purchase("a", "2026-01-01T12:00:10+00:00", "Books", 10.00),
        purchase("b", "2026-01-01T12:00:40+00:00", "Books", 5.01),
        purchase("b", "2026-01-01T12:00:40+00:00", "Books", 5.01),  # duplicate id: once
        {
            "event_id": "c",
            "event_type": "page_view",
            "timestamp": "2026-01-01T12:00:41+00:00",
            "category": "Books",
        },
    ]
    got = expected_revenue_by_category(
        events, AnalyticsSettings(revenue_window_seconds=60, revenue_slide_seconds=30)
    )
    rows = {
        (r.window_start.strftime("%H:%M:%S"), r.category): (
            r.total_revenue,
            r.purchase_count,
            r.avg_order_value,
        )
        for r in got.itertuples()
    }
    assert rows == {
        ("11:59:30", "Books"): (Decimal("10.00"), 1, Decimal("10.00")),
        ("12:00:00", "Books"): (Decimal("15.01"), 2, Decimal("7.51")),  # 7.505 rounds half up
        ("12:00:30", "Books"): (Decimal("5.01"), 1, Decimal("5.01")),
    }
