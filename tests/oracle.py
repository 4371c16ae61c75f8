"""Independent expectations for the analytics, written from the data contract in
docs/DESIGN.md in plain Python.

Nothing here imports Spark or the project's transforms: a test compares the platform's output
with these computations over the same events.  The events are valid ones; a timestamp
without an offset is read as UTC (the contract's default zone; :func:`naive_times_in`
reads them in another).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pandas as pd

# Column names are the tables' contract; every value below is computed here, independently.
from include.analytics import (
    CLICK_TO_PURCHASE,
    CONVERSION_FUNNEL,
    HIGH_VALUE_USERS,
    REVENUE_BY_CATEGORY,
    USER_SESSIONS,
)

CENTS = Decimal("0.01")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_time(event: dict, naive_zone: str = "UTC") -> datetime:
    moment = datetime.fromisoformat(event["timestamp"])
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(naive_zone))
    return moment.astimezone(UTC)


def naive_times_in(events: list[dict], zone: str) -> list[dict]:
    """The events with every zone-less timestamp read as the wall-clock time of `zone`
    (the contract's ``[events] naive_timezone``), written with its UTC offset."""
    return [{**e, "timestamp": event_time(e, zone).isoformat()} for e in events]


def revenue(event: dict) -> Decimal:
    """A purchase's revenue in cents, half up: float noise (``1299.99 * 3`` is
    ``3899.9700000000003``) is not money."""
    return Decimal(str(event["revenue"])).quantize(CENTS, rounding=ROUND_HALF_UP)


def sliding_windows(moment: datetime, length_s: int, slide_s: int) -> list[datetime]:
    """Starts of every [start, start + length) window, aligned to the epoch, holding moment."""
    offset = (moment - EPOCH).total_seconds()
    latest_start = int(offset // slide_s) * slide_s
    starts = []
    start = latest_start
    while start > offset - length_s:
        starts.append(EPOCH + timedelta(seconds=start))
        start -= slide_s
    return starts


def first_of_each_event_id(events: list[dict]) -> list[dict]:
    seen: set[str] = set()
    unique = []
    for event in events:
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            unique.append(event)
    return unique


def expected_revenue_by_category(events: list[dict], analytics) -> pd.DataFrame:
    """Per sliding window and category: total revenue, purchase count, average order value."""
    length, slide = analytics.revenue_window_seconds, analytics.revenue_slide_seconds
    totals: dict[tuple[datetime, str], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    for event in first_of_each_event_id(events):
        if event["event_type"] != "purchase":
            continue
        for start in sliding_windows(event_time(event), length, slide):
            key = (start, event["category"])
            totals[key] += revenue(event)
            counts[key] += 1
    rows = [
        {
            "window_start": pd.Timestamp(start),
            "window_end": pd.Timestamp(start + timedelta(seconds=length)),
            "category": category,
            "total_revenue": totals[(start, category)].quantize(CENTS),
            "purchase_count": counts[(start, category)],
            "avg_order_value": (totals[(start, category)] / counts[(start, category)]).quantize(
                CENTS, rounding=ROUND_HALF_UP
            ),
        }
        for start, category in totals
    ]
    columns = list(REVENUE_BY_CATEGORY.columns)
    return pd.DataFrame(rows, columns=columns).sort_values(
        ["window_start", "category"], ignore_index=True
    )


def closed_windows(expected: pd.DataFrame, watermark: datetime) -> pd.DataFrame:
    """Windows an append-mode query has emitted once its watermark reached `watermark`."""
    return expected[expected["window_end"] <= pd.Timestamp(watermark)].reset_index(drop=True)


def expected_high_value_users(events: list[dict], analytics) -> pd.DataFrame:
    """Per sliding window and user: total spent, purchases, sorted distinct product names
    and ids; only users who spent more than the threshold."""
    length, slide = analytics.high_value_window_seconds, analytics.high_value_slide_seconds
    spent: dict[tuple[datetime, str], Decimal] = defaultdict(Decimal)
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    names: dict[tuple[datetime, str], set[str]] = defaultdict(set)
    products: dict[tuple[datetime, str], set[str]] = defaultdict(set)
    for event in first_of_each_event_id(events):
        if event["event_type"] != "purchase":
            continue
        for start in sliding_windows(event_time(event), length, slide):
            key = (start, event["user_id"])
            spent[key] += revenue(event)
            counts[key] += 1
            names[key].add(event["product_name"])
            products[key].add(event["product_id"])
    threshold = Decimal(str(analytics.high_value_threshold))
    rows = [
        {
            "window_start": pd.Timestamp(start),
            "window_end": pd.Timestamp(start + timedelta(seconds=length)),
            "user_id": user,
            "total_spent": spent[(start, user)].quantize(CENTS),
            "purchase_count": counts[(start, user)],
            "products_purchased": sorted(names[(start, user)]),
            "product_ids_purchased": sorted(products[(start, user)]),
        }
        for start, user in spent
        if spent[(start, user)] > threshold
    ]
    columns = list(HIGH_VALUE_USERS.columns)
    return pd.DataFrame(rows, columns=columns).sort_values(
        ["window_start", "user_id"], ignore_index=True
    )


def percent(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(CENTS, rounding=ROUND_HALF_UP)


def expected_conversion_funnel(events: list[dict], analytics) -> pd.DataFrame:
    """Per sliding window: exact distinct viewers, cart users and purchasers, and the rates."""
    length, slide = analytics.funnel_window_seconds, analytics.funnel_slide_seconds
    users: dict[datetime, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event in first_of_each_event_id(events):
        for start in sliding_windows(event_time(event), length, slide):
            users[start][event["event_type"]].add(event["user_id"])
    rows = []
    for start, by_type in users.items():
        visitors = len(by_type["page_view"])
        carts = len(by_type["add_to_cart"])
        buyers = len(by_type["purchase"])
        rows.append(
            {
                "window_start": pd.Timestamp(start),
                "window_end": pd.Timestamp(start + timedelta(seconds=length)),
                "unique_visitors": visitors,
                "cart_users": carts,
                "purchasers": buyers,
                "cart_conversion_rate": percent(carts, visitors),
                "purchase_conversion_rate": percent(buyers, carts),
            }
        )
    columns = list(CONVERSION_FUNNEL.columns)
    return pd.DataFrame(rows, columns=columns).sort_values("window_start", ignore_index=True)


def expected_user_sessions(events: list[dict], analytics) -> pd.DataFrame:
    """Per user: a new session after `session_gap_seconds` (or more) without an event."""
    gap = timedelta(seconds=analytics.session_gap_seconds)
    by_user: dict[str, list[dict]] = defaultdict(list)
    for event in first_of_each_event_id(events):
        by_user[event["user_id"]].append(event)
    rows = []
    for user, user_events in by_user.items():
        user_events.sort(key=event_time)
        sessions: list[list[dict]] = []
        for event in user_events:
            if sessions and event_time(event) - event_time(sessions[-1][-1]) < gap:
                sessions[-1].append(event)
            else:
                sessions.append([event])
        for session in sessions:
            start, end = event_time(session[0]), event_time(session[-1])
            rows.append(
                {
                    "user_id": user,
                    "session_start": pd.Timestamp(start),
                    "session_end": pd.Timestamp(end),
                    "duration_seconds": (end - start).total_seconds(),
                    "event_count": len(session),
                    "total_revenue": sum(
                        (revenue(e) for e in session if e["event_type"] == "purchase"),
                        Decimal("0.00"),
                    ),
                    "unique_products": len(
                        {e["product_id"] for e in session if e["event_type"] == "page_view"}
                    ),
                }
            )
    columns = list(USER_SESSIONS.columns)
    return pd.DataFrame(rows, columns=columns).sort_values(
        ["user_id", "session_start"], ignore_index=True
    )


def closed_sessions(expected: pd.DataFrame, watermark: datetime, gap_seconds: int):
    """Sessions an append-mode query has emitted: last event + gap at or before the watermark."""
    ends = expected["session_end"] + pd.Timedelta(seconds=gap_seconds)
    return expected[ends <= pd.Timestamp(watermark)].reset_index(drop=True)


def expected_click_to_purchase(events: list[dict], analytics) -> pd.DataFrame:
    """Every (page view, purchase) of the same user and product with
    click_time < purchase_time <= click_time + attribution_seconds."""
    window = timedelta(seconds=analytics.attribution_seconds)
    unique = first_of_each_event_id(events)
    views = [e for e in unique if e["event_type"] == "page_view"]
    # Each pair's purchases in time order, so a view looks only at those inside its
    # attribution window (a scan of all of them is quadratic over a long campaign).
    purchases = defaultdict(list)
    for e in unique:
        if e["event_type"] == "purchase":
            purchases[(e["user_id"], e["product_id"])].append((event_time(e), e))
    times = {}
    for pair, bought in purchases.items():
        bought.sort(key=lambda timed: timed[0])
        times[pair] = [moment for moment, _ in bought]
    rows = []
    for view in views:
        clicked = event_time(view)
        pair = (view["user_id"], view["product_id"])
        moments = times.get(pair, [])
        first = bisect_right(moments, clicked)  # bought > clicked
        last = bisect_right(moments, clicked + window)  # bought <= clicked + window
        for bought, buy in purchases.get(pair, [])[first:last]:
            rows.append(
                {
                    "user_id": view["user_id"],
                    "product_id": view["product_id"],
                    "click_event_id": view["event_id"],
                    "purchase_event_id": buy["event_id"],
                    "click_time": pd.Timestamp(clicked),
                    "purchase_time": pd.Timestamp(bought),
                    "time_to_purchase_seconds": (bought - clicked).total_seconds(),
                    "device_type": view["device_type"],
                    "revenue": revenue(buy),
                }
            )
    columns = list(CLICK_TO_PURCHASE.columns)
    return pd.DataFrame(rows, columns=columns).sort_values(
        ["click_event_id", "purchase_event_id"], ignore_index=True
    )


# Each analytic's expectation, by the analytic's name (include.analytics).
EXPECTED = {
    REVENUE_BY_CATEGORY.name: expected_revenue_by_category,
    HIGH_VALUE_USERS.name: expected_high_value_users,
    CONVERSION_FUNNEL.name: expected_conversion_funnel,
    USER_SESSIONS.name: expected_user_sessions,
    CLICK_TO_PURCHASE.name: expected_click_to_purchase,
}
