"""The e-commerce event generators, seeded and pure: the platform's and the tutorial's.

Both write events of the data contract (docs/DESIGN.md, "Data contract").  Given the same seed and
the same event times, a generator yields the same events, which the tests rely on.

* :class:`EventGenerator` models visits: a user arrives, looks at a few products, maybe
  adds one to the cart and buys it, and leaves for at least :data:`AWAY_MIN_SECONDS`, so
  sessions close and every analytic gets rows.
* :class:`TutorialEventGenerator` writes exactly what the Kafka + Spark tutorial's producer
  writes: zone-less local timestamps, quantity 0 on views and removals, float revenue.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from include.contract import COUNTED_EVENT_TYPES, EVENT_TYPES, iso_utc, money

# Most clicks browse; few buy (a purchase or removal needs something in the cart).
EVENT_TYPE_WEIGHTS = (0.70, 0.15, 0.10, 0.05)
CATEGORIES = ("Electronics", "Clothing", "Books", "Home", "Sports", "Beauty", "Toys", "Grocery")
DEVICE_TYPES = ("mobile", "desktop", "tablet")
COUNTRIES = ("US", "UK", "DE", "FR", "CA", "AU", "JP", "BR", "IN", "NL")
PRODUCT_WORDS = ("Pro", "Max", "Lite", "Classic", "Smart", "Eco", "Ultra", "Mini")


@dataclass(frozen=True)
class Product:
    """A catalogue product; ``price`` rounded to cents."""

    product_id: str
    product_name: str
    category: str
    price: Decimal


@dataclass
class Visit:
    """One user's visit: the products they came for, their cart, and when they leave."""

    user_id: str
    session_id: str
    products: list[Product]
    leaves_at: float
    cart: list[Product] = field(default_factory=list)


# The shape of a visit: it lasts VISIT_SECONDS on average, with a click every
# THINK_SECONDS on average; then the user stays away AWAY_MIN_SECONDS to AWAY_MAX_SECONDS,
# longer than the default 30-minute session gap, so every visit's session closes.
VISIT_SECONDS = 180.0
THINK_SECONDS = 15.0
AWAY_MIN_SECONDS = 35 * 60
AWAY_MAX_SECONDS = 60 * 60


class EventGenerator:
    """Yields contract-conforming events of visits by a fixed population of users.

    ``event(at)`` answers "who clicks at `at`?": the visit whose next click is due; else
    a new visit by a user back from being away; else (every user busy or away) the visit
    due soonest clicks early.  So the number of visits running at once follows the event
    rate, and a user pool too small for the rate gives quicker clicks and longer visits
    (the last visit running stays until a user is back), never a user back before their
    away time is over.

    ``visits=False`` spreads the events evenly over the whole pool instead (each event by
    a user drawn at random, the way this generator worked before it modelled visits): the
    benchmarks use it, so that "more users" means more distinct users in the same events,
    and their figures stay comparable across runs.
    """

    def __init__(
        self, seed: int = 42, users: int = 1000, products: int = 200, visits: bool = True
    ) -> None:
        self._rng = random.Random(seed)
        self._products = [self._make_product(i) for i in range(products)]
        names = [f"user_{i:06d}" for i in range(users)]
        # visits=False: each user's current visit (None before their first event).
        self._spread: dict[str, Visit | None] | None = None if visits else dict.fromkeys(names)
        self._users = names
        self._rng.shuffle(names)
        # Users not in a visit, by when they may come back: (free_at, tie-break, user).
        self._away: list[tuple[float, int, str]] = [
            (float("-inf"), i, name) for i, name in enumerate(names)
        ]
        # Visits in progress, by their next click: (next_at, tie-break, visit).
        self._visits: list[tuple[float, int, Visit]] = []
        self._ticket = users

    def _make_product(self, index: int) -> Product:
        category = self._rng.choice(CATEGORIES)
        name = f"{category} {self._rng.choice(PRODUCT_WORDS)} {index}"
        price = money(self._rng.uniform(5, 500))
        return Product(f"prod_{index:05d}", name, category, price)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _next_ticket(self) -> int:
        self._ticket += 1
        return self._ticket

    def _new_visit(self, user_id: str, now: float) -> Visit:
        rng = self._rng
        wanted = min(len(self._products), rng.randint(1, 4))
        return Visit(
            user_id=user_id,
            session_id=self._uuid(),
            products=rng.sample(self._products, wanted),
            leaves_at=now + rng.expovariate(1 / VISIT_SECONDS),
        )

    def _spread_visit(self, now: float) -> Visit:
        """visits=False: a user drawn at random, who keeps a session id for a while."""
        assert self._spread is not None
        user_id = self._rng.choice(self._users)
        visit = self._spread[user_id]
        if visit is None or self._rng.random() < 0.05:
            visit = self._spread[user_id] = self._new_visit(user_id, now)
        return visit

    def _visit_at(self, now: float) -> Visit:
        """The visit that clicks at `now`, taken off the queue."""
        if self._visits and self._visits[0][0] <= now:
            return heapq.heappop(self._visits)[2]
        if self._away and (self._away[0][0] <= now or not self._visits):
            return self._new_visit(heapq.heappop(self._away)[2], now)
        return heapq.heappop(self._visits)[2]

    def _step(self, visit: Visit) -> tuple[str, Product]:
        """What the visit does next, the way a shop's funnel runs: views of the products
        it came for (now and then another), adds to the cart, and buys or removes only
        what is in the cart."""
        rng = self._rng
        event_type = rng.choices(EVENT_TYPES, weights=EVENT_TYPE_WEIGHTS)[0]
        if event_type in ("purchase", "remove_from_cart") and visit.cart:
            return event_type, visit.cart.pop(rng.randrange(len(visit.cart)))
        if event_type != "page_view":
            event_type = "add_to_cart"
        # Mostly the products the visit came for, now and then something else.
        product = rng.choice(visit.products) if rng.random() < 0.85 else rng.choice(self._products)
        if event_type == "add_to_cart":
            visit.cart.append(product)
        return event_type, product

    def event(self, at: datetime) -> dict:
        """The event at time `at` (aware): who clicks then and what they do, as a dict of the
        data contract (``revenue`` on purchases only)."""
        rng = self._rng
        now = at.timestamp()
        visit = self._visit_at(now) if self._spread is None else self._spread_visit(now)
        event_type, product = self._step(visit)
        quantity = rng.randint(1, 3) if event_type in COUNTED_EVENT_TYPES else 1
        event = {
            "event_id": self._uuid(),
            "event_type": event_type,
            "timestamp": iso_utc(at),
            "user_id": visit.user_id,
            "product_id": product.product_id,
            "product_name": product.product_name,
            "category": product.category,
            "price": float(product.price),
            "quantity": quantity,
            "session_id": visit.session_id,
            "device_type": rng.choice(DEVICE_TYPES),
            "country": rng.choice(COUNTRIES),
        }
        if event_type == "purchase":
            event["revenue"] = float(money(product.price * quantity))
        if self._spread is None:
            self._queue(visit, now)
        return event

    def _queue(self, visit: Visit, now: float) -> None:
        """After a click: the visit's next click, or the user leaves for a while."""
        rng = self._rng
        next_at = now + rng.expovariate(1 / THINK_SECONDS)
        # The last visit running stays until a user is back to take over.
        stays = not self._visits and not (self._away and self._away[0][0] <= now)
        if next_at <= visit.leaves_at or stays:
            heapq.heappush(self._visits, (next_at, self._next_ticket(), visit))
        else:
            back_at = now + rng.uniform(AWAY_MIN_SECONDS, AWAY_MAX_SECONDS)
            heapq.heappush(self._away, (back_at, self._next_ticket(), visit.user_id))

    def stream(
        self, start: datetime, spacing: timedelta, count: int | None = None
    ) -> Iterator[dict]:
        """Events at start, start + spacing, ... (count of them, or forever)."""
        produced = 0
        while count is None or produced < count:
            yield self.event(start + produced * spacing)
            produced += 1


# The tutorial's catalogue, devices and countries, as its producer declares them.
TUTORIAL_PRODUCTS = (
    Product("LAPTOP01", "Gaming Laptop", "Electronics", Decimal("1299.99")),
    Product("PHONE01", "Smartphone Pro", "Electronics", Decimal("899.99")),
    Product("BOOK01", "Python for Data Science", "Books", Decimal("49.99")),
    Product("SHIRT01", "Cotton T-Shirt", "Clothing", Decimal("29.99")),
    Product("COFFEE01", "Premium Coffee Beans", "Food", Decimal("24.99")),
)
TUTORIAL_DEVICES = ("mobile", "desktop", "tablet")
TUTORIAL_COUNTRIES = ("US", "UK", "DE", "FR", "JP")
TUTORIAL_USERS = 100


class TutorialEventGenerator:
    """The Kafka + Spark tutorial's events, field for field, seeded.

    Where they differ from the platform's: ``timestamp`` is wall-clock time with no zone
    (``datetime.now().isoformat()``, no fraction when the microseconds are 0), here the
    time in ``zone``; ``quantity`` is 0 on page views and removals; ``revenue`` is
    ``price * quantity`` in floats, binary noise included; 100 users, five products, every
    event type equally likely, a random session id on every event.
    """

    def __init__(self, seed: int = 42, zone: str = "UTC") -> None:
        self._rng = random.Random(seed)
        self._zone = ZoneInfo(zone)

    def event(self, at: datetime) -> dict:
        """The tutorial producer's next event, its ``timestamp`` being `at` in the generator's zone,
        without an offset."""
        rng = self._rng
        product = rng.choice(TUTORIAL_PRODUCTS)
        event_type = rng.choice(EVENT_TYPES)
        quantity = rng.randint(1, 3) if event_type in COUNTED_EVENT_TYPES else 0
        price = float(product.price)
        event = {
            "event_id": f"evt_{at.timestamp()}_{rng.randint(1000, 9999)}",
            "event_type": event_type,
            "timestamp": at.astimezone(self._zone).replace(tzinfo=None).isoformat(),
            "user_id": f"user_{rng.randint(1, TUTORIAL_USERS):04d}",
            "product_id": product.product_id,
            "product_name": product.product_name,
            "category": product.category,
            "price": price,
            "quantity": quantity,
            "session_id": f"session_{rng.randint(10000, 99999)}",
            "device_type": rng.choice(TUTORIAL_DEVICES),
            "country": rng.choice(TUTORIAL_COUNTRIES),
        }
        if event_type == "purchase":
            event["revenue"] = price * quantity
        return event
