"""The e-commerce event generator: the tutorial's producer logic, seeded and pure.

Events follow the data contract in DESIGN.md section 3.  Given the same seed, start time
and spacing, the generator yields the same events, which the tests rely on.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

EVENT_TYPES = ("page_view", "add_to_cart", "purchase", "remove_from_cart")
# Most sessions browse; few buy. Weights match the tutorial's funnel shape.
EVENT_TYPE_WEIGHTS = (0.70, 0.15, 0.10, 0.05)
CATEGORIES = ("Electronics", "Clothing", "Books", "Home", "Sports", "Beauty", "Toys", "Grocery")
DEVICE_TYPES = ("mobile", "desktop", "tablet")
COUNTRIES = ("US", "UK", "DE", "FR", "CA", "AU", "JP", "BR", "IN", "NL")
PRODUCT_WORDS = ("Pro", "Max", "Lite", "Classic", "Smart", "Eco", "Ultra", "Mini")

REQUIRED_FIELDS = (
    "event_id",
    "event_type",
    "timestamp",
    "user_id",
    "product_id",
    "product_name",
    "category",
    "price",
    "quantity",
    "session_id",
    "device_type",
    "country",
)
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Product:
    product_id: str
    product_name: str
    category: str
    price: Decimal


def money(value: Decimal | float | str) -> Decimal:
    """Round to cents the way a shop does (half up), not banker's rounding."""
    return Decimal(str(value)).quantize(CENTS, rounding=ROUND_HALF_UP)


def parse_utc(text: object) -> datetime | None:
    """An ISO-8601 time as an aware UTC datetime (naive means UTC), or None if unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 with milliseconds and an explicit UTC offset."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class EventGenerator:
    """Yields contract-conforming events for a fixed population of users and products."""

    def __init__(self, seed: int = 42, users: int = 1000, products: int = 200) -> None:
        self._rng = random.Random(seed)
        self._users = [f"user_{i:06d}" for i in range(users)]
        self._products = [self._make_product(i) for i in range(products)]
        self._sessions: dict[str, str] = {}

    def _make_product(self, index: int) -> Product:
        category = self._rng.choice(CATEGORIES)
        name = f"{category} {self._rng.choice(PRODUCT_WORDS)} {index}"
        price = money(self._rng.uniform(5, 500))
        return Product(f"prod_{index:05d}", name, category, price)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def event(self, at: datetime) -> dict:
        rng = self._rng
        user_id = rng.choice(self._users)
        # A user keeps a session id for a while, like a browser would.
        if user_id not in self._sessions or rng.random() < 0.05:
            self._sessions[user_id] = self._uuid()
        product = rng.choice(self._products)
        event_type = rng.choices(EVENT_TYPES, weights=EVENT_TYPE_WEIGHTS)[0]
        quantity = rng.randint(1, 3) if event_type in ("add_to_cart", "purchase") else 1
        event = {
            "event_id": self._uuid(),
            "event_type": event_type,
            "timestamp": iso_utc(at),
            "user_id": user_id,
            "product_id": product.product_id,
            "product_name": product.product_name,
            "category": product.category,
            "price": float(product.price),
            "quantity": quantity,
            "session_id": self._sessions[user_id],
            "device_type": rng.choice(DEVICE_TYPES),
            "country": rng.choice(COUNTRIES),
        }
        if event_type == "purchase":
            event["revenue"] = float(money(product.price * quantity))
        return event

    def stream(
        self, start: datetime, spacing: timedelta, count: int | None = None
    ) -> Iterator[dict]:
        """Events at start, start + spacing, ... (count of them, or forever)."""
        produced = 0
        while count is None or produced < count:
            yield self.event(start + produced * spacing)
            produced += 1


def now_utc() -> datetime:
    return datetime.now(UTC)
