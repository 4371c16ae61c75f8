"""The long-running event producer: generated events into Kafka at a steady rate.

Sends are asynchronous (the tutorial blocked on every `future.get()`, capping it at one
round trip per event); delivery outcomes arrive in callbacks and are counted.  The producer
is idempotent with acks=all, so broker hiccups cause retries, not loss or duplicates.

The client is confluent-kafka (librdkafka): with the same settings it sent about four times
kafka-python's events/s (BENCHMARKS.md, stage 2, both clients side by side).  Its delivery
callbacks run inside ``poll()`` and ``flush()``, in the sending thread, so the send loop
polls after every send and polls, rather than sleeps, while it waits for the schedule.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from include.contract import now_utc
from include.generators import EventGenerator, TutorialEventGenerator
from include.kafka.client import confluent_producer
from include.settings.base import EVENT_FORMATS

log = logging.getLogger(__name__)

# An event's record value: JSON text by default; given to run_producer, e.g. Avro in the
# Confluent wire format of a registered schema (include.registry.AvroEncoder).
ValueEncoder = Callable[[dict[str, Any]], bytes]

# The tutorial's producer compresses its batches with snappy; in that format, so do we.
TUTORIAL_COMPRESSION = "snappy"
# How long the end of a run waits for the broker to answer what is still in flight.
FLUSH_SECONDS = 60.0
# How long a send waits for room when librdkafka's local queue is full, before trying again.
FULL_QUEUE_WAIT_SECONDS = 0.1
# How often a run adds its events sent and failed to the totals file (and once at the end).
TOTALS_EVERY_SECONDS = 2.0

# One encoder each, made once: json.dumps with any argument builds a new encoder per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_TUTORIAL_JSON = json.JSONEncoder()


@dataclass
class ProducerParams:
    """What a producer run does: ``rate`` in events per second, ``duration_seconds`` 0 to run
    until stopped.  Call :meth:`validate` before use."""

    rate: float
    duration_seconds: float = 0.0
    seed: int = 42
    users: int = 10_000
    products: int = 200
    # "platform" (visits of `users` over `products`), "avro" (the same visits; the caller
    # gives run_producer the Avro encoder) or "tutorial" (the tutorial's events).
    event_format: str = "platform"
    # The zone the tutorial format writes its zone-less timestamps in.
    naive_timezone: str = "UTC"

    def validate(self) -> ProducerParams:
        """Self when every parameter is in range, else ValueError naming each one that is not."""
        problems = []
        if not self.rate > 0:
            problems.append(f"rate must be a positive number of events per second, got {self.rate}")
        if self.duration_seconds < 0:
            problems.append(
                "duration_seconds must be 0 (run until stopped) or positive, "
                f"got {self.duration_seconds}"
            )
        if self.users < 1 or self.products < 1:
            problems.append("users and products must be at least 1")
        if self.event_format not in EVENT_FORMATS:
            problems.append(
                f"event_format must be one of {', '.join(EVENT_FORMATS)}, got {self.event_format!r}"
            )
        if problems:
            raise ValueError("invalid producer parameters: " + "; ".join(problems))
        return self


@dataclass
class DeliveryStats:
    """Events sent and the broker's answers.  confluent-kafka's callback (:meth:`delivered`)
    runs in the sending thread's poll() and flush(); kafka-python's (:meth:`ok`,
    :meth:`error`: the benchmark's kafka-python producer) on its IO thread, hence the lock."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, _metadata) -> None:
        """kafka-python's delivery callback: count an acknowledged event."""
        with self._lock:
            self.acknowledged += 1

    def error(self, exc: BaseException) -> None:
        """kafka-python's delivery errback: count a failed event and keep its error."""
        with self._lock:
            self.failed += 1
            self.last_error = repr(exc)

    def delivered(self, err, _message) -> None:
        """confluent-kafka's delivery callback: `err` is None for an acknowledged event,
        else the KafkaError it failed with (retries exhausted, purged at the end)."""
        with self._lock:
            if err is None:
                self.acknowledged += 1
            else:
                self.failed += 1
                self.last_error = str(err)

    @property
    def unanswered(self) -> int:
        """Events sent that the broker has neither acknowledged nor refused yet."""
        return self.sent - self.acknowledged - self.failed


class TotalsRecorder:
    """Adds a run's events sent and failed to the totals every producer run shares
    (``<metrics>/producer_totals.json``: the counters ``ecom_producer_events_sent_total``
    and ``..._failed_total``), what is new since its last record, so runs one after the
    other or side by side add up and a run never counts an event twice."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.recorded = (0, 0)

    def record(self, stats: DeliveryStats) -> None:
        """Add what changed since the last call; a failure to write is logged, never raised
        (the counters must not stop the events)."""
        if self.path is None:
            return
        from include.metrics import add_totals

        now = (stats.sent, stats.failed)
        try:
            add_totals(
                self.path,
                {"sent": now[0] - self.recorded[0], "failed": now[1] - self.recorded[1]},
            )
            self.recorded = now
        except OSError as exc:
            log.warning("could not add the producer's counts to %s: %s", self.path, exc)


def json_value(event: dict[str, Any], compact: bool = True) -> bytes:
    """The event as JSON text.  `compact` drops the blanks of ``json.dumps``'s default
    separators (the tutorial keeps them)."""
    return (_COMPACT_JSON if compact else _TUTORIAL_JSON).encode(event).encode()


def encode(event: dict, compact: bool = True) -> tuple[bytes, bytes]:
    """Key = user_id, so one user's events stay ordered within a partition; value = JSON."""
    return event["user_id"].encode(), json_value(event, compact)


def send_event(
    client, topic: str, event: dict, stats: DeliveryStats, value: ValueEncoder = json_value
) -> None:
    """Hand the event to confluent-kafka without waiting for the broker: the outcome is
    counted in `stats` by a later poll() or flush().  When librdkafka's local queue is full
    the send waits for the broker's answers to make room and tries again: an event is
    never dropped."""
    key = event["user_id"].encode()
    payload = value(event)
    while True:
        try:
            client.produce(topic, payload, key, on_delivery=stats.delivered)
            break
        except BufferError:
            client.poll(FULL_QUEUE_WAIT_SECONDS)
    stats.sent += 1
    # Serve the delivery callbacks of earlier sends that have been answered (never blocks).
    client.poll(0)


def run_producer(
    bootstrap_servers: str,
    topic: str,
    params: ProducerParams,
    stop: threading.Event | None = None,
    report_every: float = 10.0,
    value_encoder: ValueEncoder | None = None,
    totals: Path | None = None,
) -> DeliveryStats:
    """Produce until duration elapses or `stop` is set; always flushes before returning.
    Record values are JSON unless `value_encoder` is given (e.g. an Avro encoder);
    events the broker has not answered FLUSH_SECONDS after the end count as failed.
    With `totals` (include.metrics.producer_totals_path) the events sent and failed are
    added to that file every TOTALS_EVERY_SECONDS and at the end."""
    params.validate()
    stop = stop or threading.Event()
    tutorial = params.event_format == "tutorial"
    generator: TutorialEventGenerator | EventGenerator
    if tutorial:
        generator = TutorialEventGenerator(params.seed, params.naive_timezone)
        client = confluent_producer(bootstrap_servers, {"compression.type": TUTORIAL_COMPRESSION})
        shape = f"the tutorial's events (zone-less {params.naive_timezone} times, snappy)"
    else:
        generator = EventGenerator(params.seed, params.users, params.products)
        client = confluent_producer(bootstrap_servers)
        shape = f"visits of {params.users} users to {params.products} products"
    value = value_encoder or partial(json_value, compact=not tutorial)
    stats = DeliveryStats()
    recorder = TotalsRecorder(totals)
    recorder.record(stats)  # the counters show at 0 before the first event
    started = time.monotonic()
    next_report = started + report_every
    next_totals = started + TOTALS_EVERY_SECONDS
    log.info(
        "producing %s to %s at %.0f events/s (%s), seed %d",
        shape,
        topic,
        params.rate,
        f"for {params.duration_seconds:.0f}s" if params.duration_seconds else "until stopped",
        params.seed,
    )
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if params.duration_seconds and elapsed >= params.duration_seconds:
                break
            # Pace by the schedule, not by sleeping a fixed interval: no drift when sends are slow.
            due = int(elapsed * params.rate) + 1 - stats.sent
            for _ in range(max(due, 0)):
                send_event(client, topic, generator.event(now_utc()), stats, value)
            if time.monotonic() >= next_report:
                log.info(
                    "sent %d events, %d acknowledged, %d failed%s",
                    stats.sent,
                    stats.acknowledged,
                    stats.failed,
                    f" (last error: {stats.last_error})" if stats.last_error else "",
                )
                next_report += report_every
            if time.monotonic() >= next_totals:
                recorder.record(stats)
                next_totals += TOTALS_EVERY_SECONDS
            # Wait for the schedule while serving delivery callbacks (poll may return sooner).
            client.poll(min(0.05, 1.0 / params.rate))
    finally:
        log.info("stopping: flushing %d unacknowledged events", stats.unanswered)
        if unanswered := client.flush(FLUSH_SECONDS):
            log.warning(
                "%d events unanswered %.0f s after the end: counted as failed",
                unanswered,
                FLUSH_SECONDS,
            )
            # Purged, each one's delivery callback counts it as failed (the task fails).
            client.purge()
            client.flush(0)
        client.close()
        recorder.record(stats)
        log.info(
            "producer stopped: sent %d, acknowledged %d, failed %d",
            stats.sent,
            stats.acknowledged,
            stats.failed,
        )
    return stats
