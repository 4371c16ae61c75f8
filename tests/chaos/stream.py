"""The campaign's event stream: what the platform reads while faults hit it.

Events in the tutorial's format at a steady rate, from a thread of its own (with a malformed
record every ``malformed_every`` events), so that neither Airflow nor Kafka restarts stop
the stream; at the end, page views far enough ahead to close every window and session.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

from include.generators import TutorialEventGenerator
from include.kafka.client import producer
from include.settings import Settings
from tests.integration.dataset import MALFORMED

# Marks the malformed records in the input topic, so the counts can leave them out.
MALFORMED_KEY = b"malformed"


class EventStream:
    """Tutorial-format events at a steady rate, sent from a thread of its own.

    Every ``malformed_every``-th record is one of the integration data set's malformed
    records (keyed ``malformed``); where each landed (partition, offset) is kept, to find
    its dead letter again.  A send that blocks (the broker is down) does not make the
    stream burst afterwards: the rate stays steady, events carry the time they were made.
    """

    def __init__(self, settings: Settings, rate: float, seed: int, malformed_every: int) -> None:
        self.settings = settings
        self.rate = rate
        self.malformed_every = malformed_every
        self._generator = TutorialEventGenerator(seed, zone=settings.events.naive_timezone)
        self._client = producer(settings.bootstrap_servers, compression_type="snappy")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-events", daemon=True)
        self._malformed: list[tuple[object, bytes, str]] = []
        self.valid = 0
        self.undelivered = 0
        self.last_event_at: datetime | None = None

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        interval, due, sent = 1.0 / self.rate, time.monotonic(), 0
        while not self._stop.is_set():
            now = time.monotonic()
            if now < due:
                time.sleep(min(due - now, 0.05))
                continue
            sent += 1
            self._send(sent)
            due = max(due + interval, now - 1.0)

    def _send(self, number: int) -> None:
        topic = self.settings.kafka.input_topic
        if number % self.malformed_every == 0:
            raw, reason = MALFORMED[(number // self.malformed_every) % len(MALFORMED)]
            sent = self._client.send(topic, key=MALFORMED_KEY, value=raw)
            self._malformed.append((sent, raw, reason))
            return
        at = datetime.now(UTC)
        event = self._generator.event(at)
        sent = self._client.send(
            topic, key=event["user_id"].encode(), value=json.dumps(event).encode()
        )
        sent.add_errback(self._lost)
        self.valid += 1
        self.last_event_at = at

    def _lost(self, _exc: Exception) -> None:
        self.undelivered += 1

    def send_events(self, events: list[dict]) -> None:
        topic = self.settings.kafka.input_topic
        for event in events:
            self._client.send(
                topic, key=event["user_id"].encode(), value=json.dumps(event).encode()
            )
        self._client.flush(timeout=120)
        self._client.close(timeout=10)

    def stop(self) -> dict[tuple[int, int], tuple[bytes, str]]:
        """Stop sending; (partition, offset) -> (raw, reason) of every delivered malformed
        record (one that was not delivered counts as undelivered)."""
        self._stop.set()
        self._thread.join(timeout=60)
        self._client.flush(timeout=180)
        landed = {}
        for sent, raw, reason in self._malformed:
            try:
                meta = sent.get(timeout=60)
            except Exception:  # any delivery failure counts the same
                self.undelivered += 1
                continue
            landed[(meta.partition, meta.offset)] = (raw, reason)
        return landed

    def closing_events(self, settings: Settings) -> tuple[list[dict], datetime]:
        """Page views far enough past the last event to close every window and session;
        and the watermark they move the queries to."""
        a = settings.analytics
        horizon = max(
            a.session_gap_seconds,
            a.revenue_window_seconds,
            a.high_value_window_seconds,
            a.funnel_window_seconds,
        )
        ahead = horizon + a.watermark_seconds + 60
        if ahead >= settings.events.max_event_lead_seconds:
            raise SystemExit(
                f"[chaos] closing the last session needs events {ahead} s ahead of now, more "
                f"than [events] max_event_lead_seconds ({settings.events.max_event_lead_seconds}"
                "): they would be dead letters. Shorten the session gap for the campaign."
            )
        last = self.last_event_at or datetime.now(UTC)
        times = [last + timedelta(seconds=ahead + i) for i in range(3)]
        events = []
        for at in times:
            event = self._generator.event(at)
            event.update(event_type="page_view", quantity=0)
            event.pop("revenue", None)
            events.append(event)
        watermark = times[-1] - timedelta(seconds=a.watermark_seconds)
        # Spark keeps the watermark in milliseconds.
        return events, watermark.replace(microsecond=watermark.microsecond // 1000 * 1000)
