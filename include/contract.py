"""The event contract in code: the event types, the fields an event carries, and the money
and time rules every reader and writer of events shares (docs/DESIGN.md, "Data contract").

The generators (:mod:`include.generators`), the validation of the streaming and backfill
apps (:mod:`spark_jobs.validation`), the oracle of the tests and the UI read these, so a rule
of the contract is written once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from include.event_schema import fields

EVENT_TYPES = ("page_view", "add_to_cart", "purchase", "remove_from_cart")
PURCHASE = "purchase"
# Event types that carry a quantity of at least 1; the others may carry 0 (the tutorial does).
COUNTED_EVENT_TYPES = ("add_to_cart", "purchase")

# The fields, in the schema's order (include/schemas/ecommerce_event.avsc): those every event
# carries, and those it may carry (revenue, required on a purchase by the rule below; the
# coupon code of schema version 2).
REQUIRED_FIELDS = tuple(f.name for f in fields() if not f.optional)
OPTIONAL_FIELDS = tuple(f.name for f in fields() if f.optional)
CENTS = Decimal("0.01")


def money(value: Decimal | float | str) -> Decimal:
    """Round to cents the way a shop does (half up), not banker's rounding."""
    return Decimal(str(value)).quantize(CENTS, rounding=ROUND_HALF_UP)


def parse_utc(text: object, naive_zone: str = "UTC") -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime, or None if unreadable; a time without an
    offset is read in `naive_zone` (the contract's ``[events] naive_timezone``)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(naive_zone))
    return moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 with milliseconds and an explicit UTC offset."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def now_utc() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
