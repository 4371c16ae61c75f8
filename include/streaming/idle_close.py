"""Idle time is time too: control records that move event time on while the input is silent.

Spark moves a query's watermark only with new events.  When the producer stops, the windows
and sessions that end within one watermark delay of the newest event would wait for the next
event, tomorrow or never.  The idle rule (docs/DESIGN.md, "Idle closing"):

    When the input topic has had no new event for ``[analytics] idle_close_seconds`` and the
    streaming query has read everything in it, event time is taken to have moved on by the
    wall-clock time of the silence: ``event time = T + silence``, where ``T`` is the event time
    of the newest record in the topic and ``silence`` the seconds since it reached Kafka.

The streaming application (:class:`IdleCloser`, a thread of its driver) writes that moment into
the control topic (``[kafka] control_topic``, which the query reads beside the input topic) as a
*control record*: key :data:`CONTROL_KEY`, value
``{"control": "advance_event_time", "event_time": "<ISO-8601 UTC>", "after": "<the newest
event's time>"}``.  The query reads it
like any record, its event time moves the watermark (``event time - watermark delay``), and it
is then dropped: never an event, never a dead letter.  Windows and sessions that the new
watermark passes are published by the batch that follows.  While the silence lasts, a new
control record follows every ``idle_tick_seconds``, so windows keep closing at the wall-clock
moment they would have closed had events kept flowing, until everything a silence can close
(the longest window, session gap or attribution range, plus the watermark delay) is closed.

A silence is trusted only while Kafka answers: after a round in which it did not, the
closer waits ``idle_close_seconds`` again, so the events a producer could not deliver during a
broker outage arrive before event time moves on past them.

Because the records live in Kafka, a replayed batch sees the same ones (exactly-once
holds), a driver that restarts in a quiet moment finds the silence and closes what it should,
and the chain continues from the last control record itself (its event time and Kafka time
are ``T`` and the arrival; ``after`` tells how long the silence has lasted).  An event that
arrives after a close with an event time older than the new watermark is late, counted like
every late event (``rowsDroppedByWatermark``).

The input topic keeps only events: its other readers (the backfill, the quality checks) never
see a control record.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from include.contract import parse_utc

log = logging.getLogger("streaming_app")

# A key no event can have: events are keyed by user_id, and a user_id with a control
# character is refused by validation (unsafe_text).
CONTROL_KEY = b"\x00ecom.control"
CONTROL_KIND = "advance_event_time"


def is_control(key: bytes | None) -> bool:
    """Whether a Kafka record with this key is a control record."""
    return key == CONTROL_KEY


def control_value(event_time: datetime, after: datetime) -> bytes:
    """The value of a control record that moves event time to `event_time`; `after` is the
    newest event's time the silence follows (so a chain of them knows when to stop)."""

    def iso(moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    return json.dumps(
        {"control": CONTROL_KIND, "event_time": iso(event_time), "after": iso(after)}
    ).encode()


def control_times(value: bytes | None) -> tuple[datetime, datetime] | None:
    """The event time a control record's value carries and the event time it follows
    (None: not a control value)."""
    try:
        doc = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("control") != CONTROL_KIND:
        return None
    moment = parse_utc(doc.get("event_time"))
    if moment is None:
        return None
    return moment, parse_utc(doc.get("after")) or moment


@dataclass(frozen=True)
class Newest:
    """The newest readable record of the input topic: its event time, when it reached Kafka
    (the record's timestamp), and the event time of the newest *event* (a control record's
    ``after``; an event's own time)."""

    event_time: datetime
    arrived: datetime
    control: bool = False
    quiet_since: datetime | None = None

    @property
    def after(self) -> datetime:
        """The newest event's time this record follows."""
        return self.quiet_since or self.event_time


def newest_of(
    key: bytes | None, value: bytes | None, arrived: datetime, naive_zone: str
) -> Newest | None:
    """An input record as the idle rule reads it (None: unreadable, a malformed record)."""
    if is_control(key):
        times = control_times(value)
        return None if times is None else Newest(times[0], arrived, True, times[1])
    try:
        doc = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    moment = parse_utc(doc.get("timestamp"), naive_zone)
    return None if moment is None else Newest(moment, arrived)


@dataclass(frozen=True)
class IdleRule:
    """When to close, how far, and for how long (``[analytics]``)."""

    idle_close_seconds: float
    tick_seconds: float
    # After this much silence (in event time) everything is closed: nothing left to do.
    horizon_seconds: float

    def due(self, newest: Newest, now: datetime) -> datetime | None:
        """The event time of the control record to send now (None: nothing to send).

        After an event: nothing until ``idle_close_seconds`` of silence, then ``T +
        silence`` (however long the silence already is: a driver that comes back after an
        hour closes everything at once).  After a control record (the silence goes on): the
        next one ``tick_seconds`` later, continuing from it, until a control record has moved
        event time past the horizon: then everything is closed.
        """
        silence = (now - newest.arrived).total_seconds()
        if silence < (self.tick_seconds if newest.control else self.idle_close_seconds):
            return None
        if newest.control and (newest.event_time - newest.after).total_seconds() > (
            self.horizon_seconds
        ):
            return None
        return newest.event_time + timedelta(seconds=silence)


def idle_rule(analytics: Any) -> IdleRule:
    """The rule of the ``[analytics]`` settings: the horizon is the longest span a row can
    wait for (window, session gap, attribution range) plus the watermark delay, so the last
    session closes before the control records stop."""
    longest = max(
        analytics.revenue_window_seconds,
        analytics.high_value_window_seconds,
        analytics.funnel_window_seconds,
        analytics.session_gap_seconds,
        analytics.attribution_seconds,
    )
    return IdleRule(
        idle_close_seconds=analytics.idle_close_seconds,
        tick_seconds=analytics.idle_tick_seconds,
        horizon_seconds=longest + analytics.watermark_seconds,
    )


class IdleCloser:
    """Writes control records into the input topic while it is silent (a daemon thread).

    The Kafka side comes from the caller, so the rule and this loop are tested without a
    broker: ``end_offsets()`` (``{partition: next offset}``), ``newest()`` (the newest
    readable record; None: empty or unreadable; read again only when the end offsets moved),
    ``read_offsets()`` (how far the query has read: a control record written while it is
    behind would make the events still to be read late) and ``send(moment, after)``.
    """

    def __init__(
        self,
        rule: IdleRule,
        end_offsets: Callable[[], Mapping[str, int]],
        newest: Callable[[], Newest | None],
        read_offsets: Callable[[], Mapping[str, int] | None],
        send: Callable[[datetime, datetime], None],
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rule = rule
        self.end_offsets = end_offsets
        self.newest = newest
        self.read_offsets = read_offsets
        self.send = send
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.sent = 0
        self._seen: tuple[dict[str, int], Newest | None] | None = None
        # When Kafka last did not answer: a producer may hold events it could not deliver
        # meanwhile, so the silence counts only from then (they arrive first).
        self._unreachable_at: datetime | None = None
        self._failed = 0  # looks in a row that failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idle-closer", daemon=True)

    def step(self) -> datetime | None:
        """One look: the control record's event time when one was sent, else None."""
        ends = dict(self.end_offsets())
        if self._seen is None or self._seen[0] != ends:
            self._seen = (ends, self.newest())
        newest = self._seen[1]
        if newest is None:
            return None
        now = self.clock()
        moment = self.rule.due(newest, now)
        if moment is None or not caught_up_with(self.read_offsets(), ends):
            return None
        if self._unreachable_at is not None and (
            (now - self._unreachable_at).total_seconds() < self.rule.idle_close_seconds
        ):
            return None
        self.send(moment, newest.after)
        self.sent += 1
        log.info(
            "input idle since an event of %s: event time moved on to %s (control record %d)",
            newest.after.isoformat(timespec="seconds"),
            moment.isoformat(timespec="seconds"),
            self.sent,
        )
        return moment

    def round(self) -> datetime | None:
        """One look that never raises: a failure (Kafka did not answer) is logged and
        remembered, and the silence counts again from it."""
        try:
            moment = self.step()
        except Exception as error:  # a broker hiccup must not end the closing for good
            self._unreachable_at = self.clock()
            self._seen = None
            self._failed += 1
            # Once per outage, not once per poll while the broker is away.
            log.log(
                logging.WARNING if self._failed == 1 else logging.DEBUG,
                "idle closing paused, Kafka did not answer: %s",
                error,
            )
            return None
        if self._failed:
            log.info("idle closing resumed: Kafka answers again (%d looks failed)", self._failed)
            self._failed = 0
        return moment

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.round()

    def start(self) -> IdleCloser:
        """Start the loop in its thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the loop (within one poll)."""
        self._stop.set()
        self._thread.join(timeout=10)


def caught_up_with(read_offsets: Mapping[str, int] | None, end_offsets: Mapping[str, int]) -> bool:
    """Whether the offsets a query has read reach the topic's end on every partition
    (``{partition: offset}``, the next offset to read)."""
    if read_offsets is None:
        return False
    return all(int(read_offsets.get(p, 0)) >= int(end) for p, end in end_offsets.items())
