"""The event generators keep the data contract (docs/DESIGN.md, "Data contract") and are
reproducible; the platform's models visits, the tutorial's writes the tutorial's events as
they are."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from include.contract import EVENT_TYPES, REQUIRED_FIELDS
from include.generators import AWAY_MIN_SECONDS, EventGenerator, TutorialEventGenerator
from include.producer import encode
from include.settings.sections import AnalyticsSettings, ProducerSettings

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def sample(seed: int, count: int = 2000) -> list[dict]:
    return list(
        EventGenerator(seed=seed, users=50, products=20).stream(
            START, timedelta(milliseconds=100), count
        )
    )


def test_every_event_has_the_contract_fields_with_their_types():
    for event in sample(7):
        assert set(REQUIRED_FIELDS) <= event.keys()
        assert event["event_type"] in EVENT_TYPES
        assert isinstance(event["price"], float) and event["price"] > 0
        assert isinstance(event["quantity"], int) and event["quantity"] >= 1
        parsed = datetime.fromisoformat(event["timestamp"])
        assert parsed.tzinfo is not None and START <= parsed < START + timedelta(seconds=200)


def test_revenue_is_price_times_quantity_on_purchases_only():
    purchases = 0
    for event in sample(11):
        if event["event_type"] == "purchase":
            purchases += 1
            expected = (Decimal(str(event["price"])) * event["quantity"]).quantize(Decimal("0.01"))
            assert Decimal(str(event["revenue"])) == expected
        else:
            assert "revenue" not in event
    assert purchases > 100  # ~10% of 2000: the funnel shape is there


def test_all_event_types_occur():
    assert {e["event_type"] for e in sample(3)} == set(EVENT_TYPES)


def test_same_seed_same_events_other_seed_other_events():
    assert sample(5, 300) == sample(5, 300)
    assert sample(5, 300) != sample(6, 300)


def test_event_ids_are_unique():
    ids = [e["event_id"] for e in sample(9)]
    assert len(ids) == len(set(ids))


def test_key_is_the_user_id():
    event = sample(1, 1)[0]
    key, value = encode(event)
    assert key == event["user_id"].encode()
    assert b'"event_id"' in value


# ---------------------------------------------------------------- visits


def gaps_after_each_event(events: list[dict]) -> list[tuple[datetime, float]]:
    """(event time, seconds until the same user's next event; inf if none) per event."""
    last: dict[str, datetime] = {}
    gaps = []
    for event in events:
        moment = datetime.fromisoformat(event["timestamp"])
        if event["user_id"] in last:
            gaps.append((last[event["user_id"]], (moment - last[event["user_id"]]).total_seconds()))
        last[event["user_id"]] = moment
    gaps += [(moment, float("inf")) for moment in last.values()]
    return gaps


def test_with_the_default_settings_sessions_close_within_35_minutes():
    """50 events/s from the default user pool: some users leave for longer than the 30-minute
    gap early on, so user_sessions gets rows soon after `make up` (docs/DESIGN.md, "When
    rows first appear")."""
    defaults = ProducerSettings()
    analytics = AnalyticsSettings()
    spacing = timedelta(seconds=1 / defaults.rate)
    minutes = 40
    events = list(
        EventGenerator(defaults.seed, defaults.users, defaults.products).stream(
            START, spacing, int(minutes * 60 * defaults.rate)
        )
    )
    gap = analytics.session_gap_seconds
    # A session is written once the watermark passes its last event + the gap.
    closed_by = [
        last + timedelta(seconds=gap + analytics.watermark_seconds)
        for last, silence in gaps_after_each_event(events)
        if silence >= gap
    ]
    assert closed_by and min(closed_by) <= START + timedelta(minutes=33)
    assert sum(moment <= START + timedelta(minutes=minutes) for moment in closed_by) > 100


def test_a_visit_buys_or_removes_only_what_it_put_in_the_cart():
    carts: dict[str, list[str]] = {}
    for event in sample(13, 5000):
        cart = carts.setdefault(event["session_id"], [])
        if event["event_type"] == "add_to_cart":
            cart.append(event["product_id"])
        elif event["event_type"] in ("purchase", "remove_from_cart"):
            assert event["product_id"] in cart, event
            cart.remove(event["product_id"])


def test_views_lead_to_purchases_of_the_same_product():
    """click_to_purchase needs a purchase after a view of the same product by the user."""
    viewed: set[tuple[str, str]] = set()
    joined = 0
    for event in sample(17, 5000):
        key = (event["user_id"], event["product_id"])
        if event["event_type"] == "page_view":
            viewed.add(key)
        elif event["event_type"] == "purchase":
            joined += key in viewed
    assert joined > 50


def test_a_small_user_pool_clicks_faster_rather_than_returning_early():
    # 50 users cannot keep up 10 events/s with one click every 15 s: visits click more
    # often and last longer, and nobody comes back before their away time is over.
    events = list(
        EventGenerator(seed=2, users=50, products=10).stream(START, timedelta(seconds=0.1), 20_000)
    )
    sessions: dict[str, list[datetime]] = {}
    for event in events:
        sessions.setdefault(event["session_id"], []).append(
            datetime.fromisoformat(event["timestamp"])
        )
    by_user: dict[str, list[tuple[datetime, datetime]]] = {}
    for event in events:
        times = sessions[event["session_id"]]
        by_user.setdefault(event["user_id"], []).append((times[0], times[-1]))
    for visits in by_user.values():
        spans = sorted(set(visits))
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert (start - end).total_seconds() >= AWAY_MIN_SECONDS


# ---------------------------------------------------------------- the tutorial's events

TUTORIAL_NAMES = {
    "LAPTOP01": ("Gaming Laptop", "Electronics", 1299.99),
    "PHONE01": ("Smartphone Pro", "Electronics", 899.99),
    "BOOK01": ("Python for Data Science", "Books", 49.99),
    "SHIRT01": ("Cotton T-Shirt", "Clothing", 29.99),
    "COFFEE01": ("Premium Coffee Beans", "Food", 24.99),
}


def tutorial_sample(zone: str = "UTC", count: int = 2000) -> list[dict]:
    generator = TutorialEventGenerator(seed=4, zone=zone)
    # Every 10th event on a whole second: isoformat() then writes no fraction.
    return [
        generator.event(START + timedelta(seconds=i // 10, microseconds=(i % 10) * 12_345))
        for i in range(count)
    ]


def test_tutorial_events_are_the_tutorials_field_for_field():
    events = tutorial_sample()
    for event in events:
        assert re.fullmatch(r"evt_\d+\.\d+_\d{4}", event["event_id"])
        assert (
            re.fullmatch(r"user_0(0\d\d|100)", event["user_id"]) and event["user_id"] != "user_0000"
        )
        name, category, price = TUTORIAL_NAMES[event["product_id"]]
        assert (event["product_name"], event["category"], event["price"]) == (name, category, price)
        assert re.fullmatch(r"session_\d{5}", event["session_id"])
        assert event["device_type"] in ("mobile", "desktop", "tablet")
        assert event["country"] in ("US", "UK", "DE", "FR", "JP")
        if event["event_type"] in ("add_to_cart", "purchase"):
            assert event["quantity"] in (1, 2, 3)
        else:
            assert event["quantity"] == 0
        if event["event_type"] == "purchase":
            assert event["revenue"] == price * event["quantity"]  # the float product, noise kept
        else:
            assert "revenue" not in event
    assert {e["event_type"] for e in events} == set(EVENT_TYPES)
    noisy = [
        e for e in events if "revenue" in e and Decimal(str(e["revenue"])).as_tuple().exponent < -2
    ]
    assert noisy, "float revenue carries binary noise, e.g. 1299.99 * 3 = 3899.9700000000003"


def test_tutorial_timestamps_are_zone_less_wall_clock_times():
    events = tutorial_sample("Europe/Berlin", 20)
    # START is 12:00 UTC on 1 March: 13:00 in Berlin, written without a zone.
    assert events[0]["timestamp"] == "2026-03-01T13:00:00"  # no fraction at .000000
    assert events[1]["timestamp"] == "2026-03-01T13:00:00.012345"
    assert all(datetime.fromisoformat(e["timestamp"]).tzinfo is None for e in events)


def test_without_visits_the_events_spread_over_the_whole_pool():
    """The benchmarks' mode: the same events over more users reach more distinct users."""

    def distinct(users: int, visits: bool) -> int:
        generator = EventGenerator(seed=5, users=users, products=50, visits=visits)
        events = generator.stream(START, timedelta(seconds=0.36), 10_000)  # 1 hour
        return len({e["user_id"] for e in events})

    assert distinct(1_000, visits=False) > 990  # nearly every user of the pool
    assert distinct(1_000, visits=False) < distinct(10_000, visits=False)
    # Visits: as many users as visits started (a few clicks each), far fewer.
    assert distinct(10_000, visits=True) < distinct(10_000, visits=False) / 2
