"""The event generator keeps the data contract (DESIGN.md section 3) and is reproducible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from include.events import EVENT_TYPES, REQUIRED_FIELDS, EventGenerator
from include.producer import encode

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
