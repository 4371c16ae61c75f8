"""The real streaming application on the real broker: every row of every analytic equals the
oracle, every malformed event reaches the dead-letter topic with its reason.

1. Provision topics; produce a seeded event set: ~10 minutes of events, shuffled within
   15-second blocks (out of order, inside the watermark), 40 re-sent duplicates, one
   malformed record of each kind, then page views an hour later whose only job is to move
   the watermark past every window and session.
2. spark-submit the streaming application from the earliest offset.
3. Poll each Delta table until it holds as many rows as the oracle; compare every row.
4. Read the output topic (at least once: dedupe by key) and the dead-letter topic.
5. Touch the stop file: the application stops at a batch boundary and exits 0.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.events import EventGenerator
from include.kafka_client import consumer, producer, read_to_end
from include.tables import read_table as committed_table
from include.topics import provision
from tests.conftest import poll
from tests.integration.streaming import launch
from tests.oracle import (
    closed_sessions,
    closed_windows,
    expected_click_to_purchase,
    expected_conversion_funnel,
    expected_high_value_users,
    expected_revenue_by_category,
    expected_user_sessions,
)

pytestmark = pytest.mark.integration

EXPECTED_EVENTS = 4000
EXPECTED_DUPLICATES = 40
START = (datetime.now(UTC) - timedelta(hours=1)).replace(second=7, microsecond=0)


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


MALFORMED: list[tuple[bytes, str]] = [
    (b"\xff\xfe\x00 not utf-8", "invalid_utf8"),
    (b"this is not json", "not_json"),
    (b"[1, 2, 3]", "not_json_object"),
    (as_bytes(without("price")), "missing_field:price"),
    (as_bytes(without("revenue")), "missing_field:revenue"),
    (as_bytes(good_event(price="ten")), "wrong_type:price"),
    (as_bytes(good_event(event_type="refund")), "unknown_event_type"),
    (as_bytes(good_event(price=-10.0, revenue=-20.0)), "negative_price"),
    (as_bytes(good_event(timestamp="2199-01-01T00:00:00+00:00")), "absurd_timestamp"),
    (as_bytes(good_event(product_name="x" * 70_000)), "oversize"),
]


def seeded_events() -> tuple[list[dict], list[dict]]:
    """(events as sent, including duplicates) and (watermark-advancing page views)."""
    rng = random.Random(5)
    events = list(
        EventGenerator(seed=11, users=300, products=60).stream(
            START, timedelta(milliseconds=150), EXPECTED_EVENTS
        )
    )
    shuffled = []
    for i in range(0, len(events), 100):  # 100 events = 15 s: well inside the watermark
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


@pytest.fixture(scope="module")
def produced(kafka, settings):
    provision(settings)
    sent, flush = seeded_events()
    client = producer(settings.bootstrap_servers)
    topic = settings.kafka.input_topic
    for event in sent:
        client.send(topic, key=event["user_id"].encode(), value=as_bytes(event))
    # Where each malformed record landed, to find it again in the dead letters.
    malformed_at = {}
    for raw, reason in MALFORMED:
        meta = client.send(topic, key=b"malformed", value=raw).get(timeout=30)
        malformed_at[(meta.partition, meta.offset)] = (raw, reason)
    client.flush()
    for event in flush:  # after everything else, so they close the windows last
        client.send(topic, key=event["user_id"].encode(), value=as_bytes(event))
    client.flush()
    client.close()
    return sent, flush, malformed_at


@pytest.fixture(scope="module")
def streaming_run(produced, settings, tmp_path_factory):
    stop_file = tmp_path_factory.mktemp("ctl") / "stop"
    log = settings.log_dir / "streaming-integration.log"
    proc = launch(settings, log, "--stop-file", str(stop_file))  # every query
    yield proc, stop_file, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


def read_table(path) -> pd.DataFrame:
    frame = committed_table(path)
    return pd.DataFrame() if frame is None else frame


ORACLES = {
    "revenue_by_category": (expected_revenue_by_category, ["window_start", "category"]),
    "high_value_users": (expected_high_value_users, ["window_start", "user_id"]),
    "conversion_funnel": (expected_conversion_funnel, ["window_start"]),
    "user_sessions": (expected_user_sessions, ["user_id", "session_start"]),
    "click_to_purchase": (expected_click_to_purchase, ["click_event_id", "purchase_event_id"]),
}
TIME_COLUMNS = (
    "window_start",
    "window_end",
    "session_start",
    "session_end",
    "click_time",
    "purchase_time",
)


def emitted(analytic: str, expected: pd.DataFrame, watermark: datetime, settings) -> pd.DataFrame:
    """What an append-mode query has written once its watermark reached `watermark`."""
    if analytic == "user_sessions":
        return closed_sessions(expected, watermark, settings.analytics.session_gap_seconds)
    if analytic == "click_to_purchase":
        return expected  # an inner join emits a pair as soon as both sides have arrived
    return closed_windows(expected, watermark)


def normalise(frame: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    frame = frame.assign(
        **{c: pd.to_datetime(frame[c], utc=True) for c in TIME_COLUMNS if c in frame}
    )
    if "products_purchased" in frame:
        frame["products_purchased"] = frame["products_purchased"].map(list)
    return frame.sort_values(order, ignore_index=True)


@pytest.mark.parametrize("analytic", list(ORACLES))
def test_every_row_of_every_analytic_equals_the_oracle(analytic, produced, streaming_run, settings):
    sent, flush, _ = produced
    proc, _, log = streaming_run
    oracle, order = ORACLES[analytic]
    watermark = max(datetime.fromisoformat(e["timestamp"]) for e in flush) - timedelta(
        seconds=settings.analytics.watermark_seconds
    )
    expected = normalise(
        emitted(analytic, oracle(sent + flush, settings.analytics), watermark, settings), order
    )
    assert len(expected) > 10  # the data set really spans many windows

    def fetch():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        return read_table(settings.table_path(analytic))

    got = poll(
        fetch,
        lambda df: len(df) >= len(expected),
        f"{len(expected)} {analytic} rows",
        timeout=300,
        interval=3,
    )
    got = normalise(got, order)[list(expected.columns)]
    assert len(got) == len(expected), "the sink has rows the oracle does not (duplicates?)"
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    # The output topic carries the same rows, at least once, with deterministic keys.  The
    # batch writes Kafka after the table, so the topic may trail the table for a moment.
    keys = poll(
        lambda: {
            r.key for r in read_to_end(settings.bootstrap_servers, settings.output_topic(analytic))
        },
        lambda found: len(found) >= len(expected),
        f"{analytic} output topic",
        timeout=60,
    )
    assert len(keys) == len(expected)


def test_every_malformed_event_is_dead_lettered_with_its_reason(produced, streaming_run, settings):
    proc, _, log = streaming_run
    wanted = produced[2]

    def fetch():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        reader = consumer(
            settings.bootstrap_servers, settings.kafka.dead_letter_topic, consumer_timeout_ms=3000
        )
        records = [json.loads(r.value) for r in reader]
        reader.close()
        return records

    records = poll(
        fetch, lambda recs: len(recs) >= len(MALFORMED), "dead letters", timeout=240, interval=3
    )
    got = {(r["source_partition"], r["source_offset"]): r for r in records}
    assert len(records) == len(wanted), "each malformed record exactly once, nothing else"
    assert set(got) == set(wanted)
    for where, (raw, reason) in wanted.items():
        record = got[where]
        assert record["reason"] == reason, where
        assert record["source_topic"] == settings.kafka.input_topic
        assert record["raw_value_bytes"] == len(raw)
        shown = base64.b64decode(record["raw_value_base64"])
        # The message keeps at most max_event_bytes of the raw value; the table keeps all.
        assert shown == (raw[: len(shown)] if record["raw_value_truncated"] else raw)
    quarantine = read_table(settings.table_path("dead_letters"))
    table = {
        (r.source_partition, r.source_offset): (bytes(r.raw_value), r.reason)
        for r in quarantine.itertuples()
    }
    assert table == wanted


def test_stop_file_stops_the_application_cleanly(streaming_run):
    proc, stop_file, log = streaming_run
    stop_file.touch()
    assert proc.wait(timeout=120) == 0, f"streaming app did not exit 0; see {log}"
