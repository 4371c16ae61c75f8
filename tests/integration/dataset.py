"""The seeded event set the streaming integration tests share, and the oracle's view of it.

~10 minutes of events in two shapes, the platform's (visits, times with an offset) and
the tutorial's (zone-less times in NAIVE_ZONE, some without a fraction, quantity 0 on views
and removals, float revenue with binary noise), shuffled within ~10-second blocks (out of
order, inside the watermark); re-sent duplicates; one malformed record of each kind; all
sent in snappy batches as the tutorial's producer sends them; then page views an hour later
whose only job is to move the watermark past every window and session.  On the wire, every
fifth event is Avro of schema version 1 and every fifth another Avro of version 2 (with a
coupon code on purchases), the rest JSON: the oracle sees the same events whatever their
format.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa

from include.analytics import ANALYTICS, CLICK_TO_PURCHASE, USER_SESSIONS
from include.event_schema import frame, schema_text
from include.generators import EventGenerator, TutorialEventGenerator
from include.kafka.client import producer
from include.registry import AvroEncoder, register
from include.settings import Settings
from include.tables import read_table as committed_table
from tests import oracle
from tests.oracle import closed_sessions, closed_windows, naive_times_in

EXPECTED_EVENTS = 4000
EXPECTED_TUTORIAL_EVENTS = 1500
EXPECTED_DUPLICATES = 40
START = (datetime.now(UTC) - timedelta(hours=1)).replace(second=7, microsecond=0)
# The zone the streaming app reads zone-less times in, for the tests (the integration
# conftest sets [events] naive_timezone to it).
NAIVE_ZONE = "Asia/Kolkata"
# The tutorial's producer compresses with snappy.
COMPRESSION = "snappy"


def good_event(**changes) -> dict:
    event = EventGenerator(seed=99).event(START + timedelta(minutes=3))
    event.update(event_type="purchase", quantity=2, price=10.0, revenue=20.0)
    event.update(changes)
    return event


def without(field: str, **changes) -> dict:
    event = good_event(**changes)
    event.pop(field)
    return event


def as_bytes(event: dict) -> bytes:
    return json.dumps(event).encode()


def tutorial_event(**changes) -> dict:
    event = TutorialEventGenerator(seed=98, zone=NAIVE_ZONE).event(START + timedelta(minutes=3))
    event.update(changes)
    return event


MALFORMED: list[tuple[bytes, str]] = [
    (b"\xff\xfe\x00 not utf-8", "invalid_utf8"),
    (b"this is not json", "not_json"),
    (b"[1, 2, 3]", "not_json_object"),
    (as_bytes(without("price")), "missing_field:price"),
    (as_bytes(without("revenue")), "missing_field:revenue"),
    (as_bytes(good_event(price="ten")), "wrong_type:price"),
    # Types are checked, not coerced; text may not reorder itself on screen.
    (as_bytes(good_event(price="10.0")), "wrong_type:price"),
    (as_bytes(good_event(event_id=12345)), "wrong_type:event_id"),
    (as_bytes(good_event(category="Books\u202egpj.exe")), "unsafe_text:category"),
    (as_bytes(good_event(event_type="refund")), "unknown_event_type"),
    (as_bytes(good_event(price=-10.0, revenue=-20.0)), "negative_price"),
    (as_bytes(good_event(timestamp="2199-01-01T00:00:00+00:00")), "timestamp_in_future:3600s"),
    # A replay of last fortnight: valid events, older than [events] max_event_lag_seconds.
    (as_bytes(good_event(timestamp="2020-01-01T00:00:00+00:00")), "timestamp_too_old:604800s"),
    (as_bytes(good_event(product_name="x" * 70_000)), "oversize"),
    # The tutorial's shape, broken: a purchase must have a quantity, nothing a negative one;
    # a space instead of the "T"; revenue 0.02 off price * quantity.
    (
        as_bytes(tutorial_event(event_type="purchase", quantity=0, revenue=0.0)),
        "non_positive_quantity",
    ),
    (as_bytes(tutorial_event(event_type="page_view", quantity=-1)), "negative_quantity"),
    (
        as_bytes(tutorial_event(timestamp=tutorial_event()["timestamp"].replace("T", " "))),
        "wrong_type:timestamp",
    ),
    (
        as_bytes(tutorial_event(event_type="purchase", price=49.99, quantity=3, revenue=150.01)),
        "revenue_mismatch",
    ),
]


def seeded_events() -> tuple[list[dict], list[dict]]:
    """(events as sent, including duplicates) and (watermark-advancing page views)."""
    rng = random.Random(5)
    platform = EventGenerator(seed=11, users=300, products=60).stream(
        START, timedelta(milliseconds=150), EXPECTED_EVENTS
    )
    tutorial = TutorialEventGenerator(seed=12, zone=NAIVE_ZONE)
    # Every 4th tutorial event on a whole second: its timestamp then has no fraction.
    tutorial_times = [
        START + timedelta(milliseconds=400 * i + (0 if i % 4 == 0 else 123))
        for i in range(EXPECTED_TUTORIAL_EVENTS)
    ]
    timed = [(datetime.fromisoformat(e["timestamp"]), e) for e in platform]
    timed += [(at, tutorial.event(at)) for at in tutorial_times]
    events = [event for _, event in sorted(timed, key=lambda pair: pair[0])]
    shuffled = []
    for i in range(0, len(events), 100):  # 100 events = ~11 s: well inside the watermark
        block = events[i : i + 100]
        rng.shuffle(block)
        shuffled += block
    duplicates = rng.sample(shuffled, EXPECTED_DUPLICATES)
    sent = shuffled + duplicates
    flush = [
        # An hour on: past every window and every 30-minute session gap of the data.
        EventGenerator(seed=1000 + i).event(START + timedelta(minutes=60, seconds=i))
        | {"event_type": "page_view"}
        for i in range(3)
    ]
    for event in flush:
        event.pop("revenue", None)
    return sent, flush


def late_events() -> list[dict]:
    """Valid, never-seen events from the data set's first minutes, to be sent once the
    watermark has passed them: every query must drop and count them, not use them."""
    generator = EventGenerator(seed=77, users=300, products=60)
    late = []
    for i, event_type in enumerate(["page_view", "add_to_cart", "purchase"] * 2):
        event = generator.event(START + timedelta(minutes=2, seconds=i))
        event.update(event_type=event_type, event_id=f"late-{i}", quantity=1)
        event.pop("revenue", None)
        if event_type == "purchase":
            event["revenue"] = event["price"]
        late.append(event)
    return late


def send(settings: Settings, events: list[dict]) -> dict[int, int]:
    """Send events to the input topic; return the highest offset written per partition."""
    client = producer(settings.bootstrap_servers, compression_type=COMPRESSION)
    sends = [
        client.send(settings.kafka.input_topic, key=e["user_id"].encode(), value=as_bytes(e))
        for e in events
    ]
    last: dict[int, int] = {}
    for meta in (s.get(timeout=60) for s in sends):
        last[meta.partition] = max(meta.offset, last.get(meta.partition, -1))
    client.close()
    return last


def avro_encoders(settings: Settings) -> dict[int, AvroEncoder]:
    """Schema versions 1 and 2 registered (in that order) and an encoder for each."""
    register(settings, schema_text(1))
    register(settings, schema_text(2))
    return {version: AvroEncoder(settings, schema_text(version)) for version in (1, 2)}


def wire_value(index: int, event: dict, encoders: dict[int, AvroEncoder]) -> bytes:
    """The ``index``-th event's record value: Avro v1, Avro v2 or JSON, by turns."""
    if index % 5 == 1:
        return encoders[1](event)
    if index % 5 == 2:
        coupon = {"coupon_code": f"SAVE{index % 20}"} if event["event_type"] == "purchase" else {}
        return encoders[2](event | coupon)
    return as_bytes(event)


def malformed_avro(encoders: dict[int, AvroEncoder]) -> list[tuple[bytes, str]]:
    """Avro records the decoder cannot read, or can read into a bad event, and their reasons."""
    v1 = encoders[1]
    body = v1(good_event())
    return [
        (frame(987_654, body[5:]), "avro_unknown_schema_id:987654"),
        (body[:25], f"avro_corrupt_body:{v1.registered.schema_id}"),
        (body + b"\x02\x03", f"avro_corrupt_body:{v1.registered.schema_id}"),
        (b"\x00\x00\x01", "avro_bad_framing"),
        (v1(good_event(price=-10.0, revenue=-20.0)), "negative_price"),
    ]


def produce_dataset(settings: Settings, sent: list[dict], flush: list[dict]) -> dict:
    """Send the data set to the input topic (JSON and Avro, schema versions 1 and 2
    registered first); return (partition, offset) -> (raw, reason) of every malformed
    record, to find it again among the dead letters."""
    encoders = avro_encoders(settings)
    client = producer(settings.bootstrap_servers, compression_type=COMPRESSION)
    topic = settings.kafka.input_topic
    for index, event in enumerate(sent):
        client.send(topic, key=event["user_id"].encode(), value=wire_value(index, event, encoders))
    malformed_at = {}
    for raw, reason in [*MALFORMED, *malformed_avro(encoders)]:
        meta = client.send(topic, key=b"malformed", value=raw).get(timeout=30)
        malformed_at[(meta.partition, meta.offset)] = (raw, reason)
    client.flush()
    for event in flush:  # after everything else, so they close the windows last
        client.send(topic, key=event["user_id"].encode(), value=as_bytes(event))
    client.flush()
    client.close()
    return malformed_at


def read_table(path) -> pd.DataFrame:
    frame = committed_table(path)
    return pd.DataFrame() if frame is None else frame


# Each analytic's oracle (tests/oracle.py, expected_<name>) and the key its rows sort by.
ORACLES = {a.name: (oracle.EXPECTED[a.name], list(a.keys)) for a in ANALYTICS}
# The analytics' event-time columns: compared as UTC timestamps whatever the reader gave.
TIME_COLUMNS = tuple(
    dict.fromkeys(f.name for a in ANALYTICS for f in a.schema if pa.types.is_timestamp(f.type))
)


def emitted(analytic: str, expected: pd.DataFrame, watermark: datetime, settings) -> pd.DataFrame:
    """What an append-mode query has written once its watermark reached `watermark`."""
    if analytic == USER_SESSIONS.name:
        return closed_sessions(expected, watermark, settings.analytics.session_gap_seconds)
    if analytic == CLICK_TO_PURCHASE.name:
        return expected  # an inner join emits a pair as soon as both sides have arrived
    return closed_windows(expected, watermark)


def normalise(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    frame = frame.assign(
        **{c: pd.to_datetime(frame[c], utc=True) for c in TIME_COLUMNS if c in frame}
    )
    if "products_purchased" in frame:
        frame["products_purchased"] = frame["products_purchased"].map(list)
    return frame.sort_values(order, ignore_index=True)


def expected_of(analytic: str, events: list[dict], settings: Settings) -> pd.DataFrame:
    """The oracle's rows of `analytic` over `events`, zone-less times read in the zone the
    streaming app reads them in."""
    expected, _ = ORACLES[analytic]
    return expected(naive_times_in(events, settings.events.naive_timezone), settings.analytics)


def expected_rows(analytic: str, sent: list[dict], flush: list[dict], settings: Settings):
    """The oracle's rows of `analytic` that the query has emitted once the flush events
    have moved the watermark, normalised for comparison."""
    _, order = ORACLES[analytic]
    watermark = max(datetime.fromisoformat(e["timestamp"]) for e in flush) - timedelta(
        seconds=settings.analytics.watermark_seconds
    )
    expected = expected_of(analytic, sent + flush, settings)
    return normalise(emitted(analytic, expected, watermark, settings), order)


def table_rows(analytic: str, settings: Settings, columns) -> pd.DataFrame:
    _, order = ORACLES[analytic]
    got = read_table(settings.paths.table_path(analytic))
    return normalise(got, order)[list(columns)] if len(got) else got
