"""Dead letters raise an alert through Airflow's event-driven scheduling.

The dead-letter topic is an Airflow Asset with a watcher: the Kafka provider's
``AwaitMessageTrigger`` runs in the triggerer, consumes the topic (consumer group
``ecom-dead-letter-alerts``, from its end) and, for a record that arrives while no alert was
sent within ``[alerts] dead_letter_interval_seconds``, fires an asset event; the
``dead_letter_alerts`` DAG is scheduled on it.  Records arriving inside the interval fire
nothing (:func:`seen` holds them back), so a flood costs no scheduler work.

The DAG's task counts by offsets, not by events: every record past the offsets of the
last alert is counted, held back or not.  After an alert it waits the interval and counts
again, until an interval passes without a new dead letter: a flood gives one alert per
interval, and its tail is reported too.  Asked to stop (SIGTERM: `make down`, a scheduler
restart) it ends at once; the next alert counts what it had not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from include.alerts.gate import Gate
from include.alerts.messages import Alert, base_url, dead_letters
from include.alerts.notify import DEAD_LETTER_CONN_ID, send
from include.settings import Settings, get_settings

log = logging.getLogger(__name__)

GATE_FILE = "alerts/dead_letters.json"
KEY = "dead_letters"
WATCHER = "dead_letter_watch"


def gate(settings: Settings) -> Gate:
    """The sending record of dead-letter alerts (the last alert's time and end offsets)."""
    return Gate(settings.paths.metrics_dir / GATE_FILE)


def seen(message: Any) -> dict[str, int] | None:
    """The watcher's ``apply_function``, run in the triggerer for every dead letter: an
    event payload (where and when the record is) when an alert may go out now, else None
    (the record is counted by the next alert)."""
    settings = get_settings()
    if gate(settings).wait(KEY, settings.alerts.dead_letter_interval_seconds, time.time()) > 0:
        return None
    _kind, timestamp_ms = message.timestamp()
    return {
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp_ms": timestamp_ms,
    }


def dead_letter_asset(settings: Settings) -> Any:
    """The dead-letter topic as an Asset watched by the Kafka provider's trigger (built at
    parse time: it only describes the watch, nothing connects)."""
    from airflow.providers.apache.kafka.triggers.await_message import AwaitMessageTrigger
    from airflow.sdk import Asset, AssetWatcher

    topic = settings.kafka.dead_letter_topic
    trigger = AwaitMessageTrigger(
        topics=[topic],
        kafka_config_id=DEAD_LETTER_CONN_ID,
        apply_function=f"{__name__}.seen",
        poll_timeout=1,
        # The pause after a held-back record: short, so a flood drains quickly.
        poll_interval=0.05,
    )
    return Asset(
        name="dead-letter-topic",
        uri=f"kafka://{settings.bootstrap_servers}/{topic}",
        watchers=[AssetWatcher(name=WATCHER, trigger=trigger)],
    )


def first_seen_ms(events: Any) -> int | None:
    """The earliest record time among the triggering asset events' payloads (None: none,
    e.g. a manual run)."""
    times = [
        event.extra.get("payload", {}).get("timestamp_ms")
        for batch in (events or {}).values()
        for event in batch
        if isinstance(event.extra.get("payload"), dict)
    ]
    return min((t for t in times if t is not None), default=None)


def offsets_since(bootstrap_servers: str, topic: str, ms: int) -> dict[str, int]:
    """Per partition, the first offset with a record time >= ``ms`` (the end if none)."""
    from kafka import TopicPartition

    from include.kafka.client import consumer, offsets_at

    reader = consumer(bootstrap_servers)
    try:
        parts = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
        return {str(tp.partition): int(o) for tp, o in offsets_at(reader, parts, ms).items()}
    finally:
        reader.close()


def count_records(
    bootstrap_servers: str, topic: str, baseline: dict[str, int], ends: dict[str, int]
) -> int:
    """Committed records between ``baseline`` and ``ends``, read: the streaming app writes
    the topic in transactions, whose markers take offsets but are no dead letters."""
    from kafka import TopicPartition

    from include.kafka.client import consumer

    wanted = {p: (baseline.get(p, 0), end) for p, end in ends.items() if end > baseline.get(p, 0)}
    if not wanted:
        return 0
    reader = consumer(bootstrap_servers, consumer_timeout_ms=1000)
    try:
        parts = {TopicPartition(topic, int(p)): span for p, span in wanted.items()}
        reader.assign(list(parts))
        for tp, (start, _) in parts.items():
            reader.seek(tp, start)
        count = 0
        deadline = time.monotonic() + 60
        while any(reader.position(tp) < end for tp, (_, end) in parts.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in 60 s")
            for tp, records in reader.poll(timeout_ms=1000).items():
                count += sum(1 for r in records if r.offset < parts[tp][1])
        return count
    finally:
        reader.close()


def report(
    settings: Settings,
    bootstrap_servers: str,
    first_ms: int | None,
    sleep: Callable[[float], object] = time.sleep,
    stopping: Callable[[], bool] = lambda: False,
) -> list[Alert]:
    """Alert the dead letters not yet alerted, at most once per interval, until an interval
    passes without a new one or ``stopping()`` says to end (``sleep`` returns early then);
    the alerts sent (none: nothing new)."""
    from include.kafka.client import end_offsets

    topic = settings.kafka.dead_letter_topic
    interval = settings.alerts.dead_letter_interval_seconds
    book = gate(settings)
    alerts: list[Alert] = []
    while True:
        wait = book.wait(KEY, interval, time.time())
        if wait > 0:
            log.info("last dead-letter alert was recent: waiting %.0f s", wait)
            sleep(wait)
            if stopping():
                log.info("asked to stop: the next alert counts the dead letters since this one")
                return alerts
        last = book.record().get(KEY, {})
        ends = end_offsets(bootstrap_servers, topic).get(topic, {})
        if last.get("offsets") is not None:
            baseline, since = last["offsets"], last.get("at") or last["counted_from"]
        elif first_ms is not None:
            baseline, since = offsets_since(bootstrap_servers, topic, first_ms), first_ms / 1000
        else:
            # Never alerted and no record in hand (a manual run): start counting from here.
            book.sent(KEY, None, offsets=ends, counted_from=time.time())
            log.info("dead letters are counted from now on")
            return alerts
        count = count_records(bootstrap_servers, topic, baseline, ends)
        if count == 0:
            log.info("no dead letters since the last alert")
            return alerts
        now = time.time()
        alert = dead_letters(count, topic, since, now + interval if interval else None, base_url())
        send(settings, alert)
        book.sent(KEY, now, offsets=ends)
        alerts.append(alert)
