"""The oracle itself is checked on hand-worked cases, so a wrong oracle cannot hide a bug."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from include.settings.sections import AnalyticsSettings
from tests.oracle import (
    event_time,
    expected_conversion_funnel,
    expected_high_value_users,
    expected_revenue_by_category,
    naive_times_in,
    revenue,
    sliding_windows,
)

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


def test_hand_worked_funnel_with_a_cart_and_no_views():
    def event(eid, ts, kind, user):
        return {"event_id": eid, "event_type": kind, "timestamp": ts, "user_id": user}

    events = [
        event("1", "2026-01-01T12:00:10+00:00", "page_view", "u1"),
        event("2", "2026-01-01T12:00:20+00:00", "page_view", "u1"),  # same user: once
        event("3", "2026-01-01T12:00:30+00:00", "add_to_cart", "u1"),
        event("4", "2026-01-01T12:00:40+00:00", "page_view", "u2"),
        event("5", "2026-01-01T12:09:00+00:00", "add_to_cart", "u3"),  # a cart, no views
    ]
    analytics = AnalyticsSettings(funnel_window_seconds=300, funnel_slide_seconds=60)
    rows = {
        r.window_start.strftime("%H:%M"): r
        for r in expected_conversion_funnel(events, analytics).itertuples()
    }
    first = rows["12:00"]
    assert (first.unique_visitors, first.cart_users, first.purchasers) == (2, 1, 0)
    assert first.cart_conversion_rate == Decimal("50.00")
    assert first.purchase_conversion_rate == Decimal("0.00")
    lonely = rows["12:09"]
    assert (lonely.unique_visitors, lonely.cart_users) == (0, 1)
    assert lonely.cart_conversion_rate is None  # divisor 0: null, not 0 and not an error


def test_hand_worked_high_value_users():
    def purchase(eid, ts, user, product, revenue):
        return {
            "event_id": eid,
            "event_type": "purchase",
            "timestamp": ts,
            "user_id": user,
            "product_id": product,
            "product_name": f"Name of {product}",
            "revenue": revenue,
        }

    events = [
        purchase("a", "2026-01-01T12:00:10+00:00", "u1", "p2", 60.00),
        purchase("b", "2026-01-01T12:01:10+00:00", "u1", "p1", 50.00),
        purchase("c", "2026-01-01T12:01:20+00:00", "u2", "p1", 100.00),  # not > 100
    ]
    analytics = AnalyticsSettings(
        high_value_window_seconds=300, high_value_slide_seconds=60, high_value_threshold=100
    )
    got = expected_high_value_users(events, analytics)
    # Windows holding both purchases of u1: starts 11:57 .. 12:00 (12:01 holds only 'b').
    assert [r.window_start.strftime("%H:%M") for r in got.itertuples()] == [
        "11:57",
        "11:58",
        "11:59",
        "12:00",
    ]
    assert all(
        r.user_id == "u1"
        and r.total_spent == Decimal("110.00")
        and r.products_purchased == ["Name of p1", "Name of p2"]
        and r.product_ids_purchased == ["p1", "p2"]
        for r in got.itertuples()
    )


def test_zone_less_times_are_read_in_the_given_zone():
    # 10:00:07 in Berlin in winter (UTC+1) is 09:00:07 UTC; the contract's default is UTC.
    event = {"timestamp": "2026-01-26T10:00:07"}
    assert event_time(event) == datetime(2026, 1, 26, 10, 0, 7, tzinfo=UTC)
    assert event_time(event, "Europe/Berlin") == datetime(2026, 1, 26, 9, 0, 7, tzinfo=UTC)
    (moved,) = naive_times_in([event | {"timestamp": "2026-07-26T10:00:07.5"}], "Europe/Berlin")
    assert moved["timestamp"] == "2026-07-26T08:00:07.500000+00:00"  # summer: UTC+2
    # A time with an offset stays that instant whatever the zone.
    assert event_time({"timestamp": "2026-01-26T10:00:07+05:30"}, "Europe/Berlin") == datetime(
        2026, 1, 26, 4, 30, 7, tzinfo=UTC
    )


def test_float_noise_in_revenue_is_rounded_to_cents_half_up():
    assert revenue({"revenue": 1299.99 * 3}) == Decimal("3899.97")  # 3899.9700000000003
    assert revenue({"revenue": 0.125}) == Decimal("0.13")  # half up, not half even
