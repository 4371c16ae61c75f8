"""The long-running event producer: generated events into Kafka at a steady rate.

Sends are asynchronous (the tutorial blocked on every `future.get()`, capping it at one
round trip per event); delivery outcomes arrive in callbacks and are counted.  The producer
is idempotent with acks=all, so broker hiccups cause retries, not loss or duplicates.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

from include.contract import now_utc
from include.generators import EventGenerator, TutorialEventGenerator
from include.kafka.client import producer as kafka_producer
from include.settings.base import EVENT_FORMATS

log = logging.getLogger(__name__)


# The tutorial's producer compresses its batches with snappy; in that format, so do we.
TUTORIAL_COMPRESSION = "snappy"


@dataclass
class ProducerParams:
    """What a producer run does: ``rate`` in events per second, ``duration_seconds`` 0 to run
    until stopped.  Call :meth:`validate` before use."""

    rate: float
    duration_seconds: float = 0.0
    seed: int = 42
    users: int = 10_000
    products: int = 200
    # "platform" (visits of `users` over `products`) or "tutorial" (the tutorial's events).
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
    """Events sent and the broker's answers; the delivery callbacks run on the client's IO
    thread, hence the lock."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, _metadata) -> None:
        """Delivery callback: count an acknowledged event."""
        with self._lock:
            self.acknowledged += 1

    def error(self, exc: BaseException) -> None:
        """Delivery errback: count a failed event and keep its error."""
        with self._lock:
            self.failed += 1
            self.last_error = repr(exc)


def encode(event: dict, compact: bool = True) -> tuple[bytes, bytes]:
    """Key = user_id, so one user's events stay ordered within a partition.  `compact`
    drops the blanks of ``json.dumps``'s default separators (the tutorial keeps them)."""
    separators = (",", ":") if compact else None
    return event["user_id"].encode(), json.dumps(event, separators=separators).encode()


def send_event(client, topic: str, event: dict, stats: DeliveryStats, compact: bool = True) -> None:
    """Send without waiting: the outcome is counted in `stats` when the broker answers."""
    key, value = encode(event, compact)
    client.send(topic, key=key, value=value).add_callback(stats.ok).add_errback(stats.error)
    stats.sent += 1


def run_producer(
    bootstrap_servers: str,
    topic: str,
    params: ProducerParams,
    stop: threading.Event | None = None,
    report_every: float = 10.0,
) -> DeliveryStats:
    """Produce until duration elapses or `stop` is set; always flushes before returning."""
    params.validate()
    stop = stop or threading.Event()
    tutorial = params.event_format == "tutorial"
    generator: TutorialEventGenerator | EventGenerator
    if tutorial:
        generator = TutorialEventGenerator(params.seed, params.naive_timezone)
        client = kafka_producer(bootstrap_servers, compression_type=TUTORIAL_COMPRESSION)
        shape = f"the tutorial's events (zone-less {params.naive_timezone} times, snappy)"
    else:
        generator = EventGenerator(params.seed, params.users, params.products)
        client = kafka_producer(bootstrap_servers)
        shape = f"visits of {params.users} users to {params.products} products"
    stats = DeliveryStats()
    started = time.monotonic()
    next_report = started + report_every
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
                send_event(client, topic, generator.event(now_utc()), stats, not tutorial)
            if time.monotonic() >= next_report:
                log.info(
                    "sent %d events, %d acknowledged, %d failed%s",
                    stats.sent,
                    stats.acknowledged,
                    stats.failed,
                    f" (last error: {stats.last_error})" if stats.last_error else "",
                )
                next_report += report_every
            time.sleep(min(0.05, 1.0 / params.rate))
    finally:
        log.info(
            "stopping: flushing %d unacknowledged events",
            stats.sent - stats.acknowledged - stats.failed,
        )
        client.flush(timeout=60)
        client.close(timeout=30)
        log.info(
            "producer stopped: sent %d, acknowledged %d, failed %d",
            stats.sent,
            stats.acknowledged,
            stats.failed,
        )
    return stats
