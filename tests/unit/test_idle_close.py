"""The idle rule (include.streaming.idle_close) without a broker: when a control record is due,
what it says, and when the closer holds back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from include.settings import get_settings
from include.streaming.idle_close import (
    CONTROL_KEY,
    IdleCloser,
    IdleRule,
    Newest,
    control_times,
    control_value,
    idle_rule,
    newest_of,
)

T = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
RULE = IdleRule(idle_close_seconds=60, tick_seconds=5, horizon_seconds=1860)


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def test_nothing_moves_before_the_idle_delay_then_time_follows_the_silence() -> None:
    # The newest event happened at T and reached Kafka 2 s later.
    newest = Newest(event_time=T, arrived=at(2))
    assert RULE.due(newest, at(61)) is None  # 59 s of silence
    assert RULE.due(newest, at(62)) == at(60)  # 60 s of silence: T + 60 s
    assert RULE.due(newest, at(92)) == at(90)


def test_after_a_control_record_the_next_follows_a_tick_later_from_it() -> None:
    control = Newest(event_time=at(60), arrived=at(62), control=True, quiet_since=T)
    assert RULE.due(control, at(66)) is None  # 4 s after it
    assert RULE.due(control, at(67)) == at(65)
    # A replayed data set: event times days behind the clock move on the same way.
    old = Newest(event_time=T - timedelta(days=3), arrived=at(0))
    assert RULE.due(old, at(60)) == T - timedelta(days=3) + timedelta(seconds=60)


def test_the_control_records_stop_once_one_passed_the_horizon() -> None:
    # The horizon: 1,860 s (longest window/gap + watermark) past the newest event.
    near = Newest(event_time=at(1860), arrived=at(1860), control=True, quiet_since=T)
    assert RULE.due(near, at(1865)) == at(1865)  # the one that passes it
    done = Newest(event_time=at(1865), arrived=at(1865), control=True, quiet_since=T)
    assert RULE.due(done, at(1900)) is None


def test_a_silence_longer_than_the_horizon_still_gets_its_close() -> None:
    # A driver that comes back two hours after the last event closes everything at once.
    newest = Newest(event_time=T, arrived=at(0))
    assert RULE.due(newest, at(7200)) == at(7200)


def test_the_default_rule_closes_the_longest_session_before_it_stops() -> None:
    rule = idle_rule(get_settings().analytics)
    a = get_settings().analytics
    assert rule.idle_close_seconds == a.idle_close_seconds
    assert rule.horizon_seconds == a.session_gap_seconds + a.watermark_seconds  # 30 min + 60 s


def test_control_values_round_trip_and_other_records_read_as_events() -> None:
    value = control_value(at(75.5), T)
    assert json.loads(value) == {
        "control": "advance_event_time",
        "event_time": "2026-05-01T10:01:15.500000Z",
        "after": "2026-05-01T10:00:00.000000Z",
    }
    assert control_times(value) == (at(75.5), T)
    assert newest_of(CONTROL_KEY, value, at(80), "UTC") == Newest(at(75.5), at(80), True, T)
    # The tutorial's zone-less time is read in the configured zone.
    event = json.dumps({"timestamp": "2026-05-01T15:30:00"}).encode()
    assert newest_of(b"u1", event, at(1), "Asia/Kolkata") == Newest(T, at(1))
    assert newest_of(b"u1", b"not json", at(1), "UTC") is None
    assert newest_of(CONTROL_KEY, b'{"control": "other"}', at(1), "UTC") is None


class FakeKafka:
    """The Kafka side of the closer: end offsets, the newest record, what the query read."""

    def __init__(self) -> None:
        self.ends = {"events/0": 10, "control/0": 0}
        self.read = dict(self.ends)
        self.newest = Newest(event_time=T, arrived=at(0))
        self.newest_reads = 0
        self.sent: list[tuple[datetime, datetime]] = []
        self.answers = True

    def end_offsets(self) -> dict[str, int]:
        if not self.answers:
            raise ConnectionError("broker down")
        return dict(self.ends)

    def read_newest(self) -> Newest:
        self.newest_reads += 1
        return self.newest

    def send(self, moment: datetime, after: datetime) -> None:
        self.sent.append((moment, after))


def closer(kafka: FakeKafka, now: list[datetime]) -> IdleCloser:
    return IdleCloser(
        RULE,
        kafka.end_offsets,
        kafka.read_newest,
        lambda: kafka.read,
        kafka.send,
        clock=lambda: now[0],
    )


def test_the_closer_sends_once_due_and_only_when_the_query_has_read_everything() -> None:
    kafka, now = FakeKafka(), [at(30)]
    loop = closer(kafka, now)
    assert loop.step() is None and kafka.sent == []
    now[0] = at(61)
    kafka.read = {"events/0": 9, "control/0": 0}  # one event still to read
    assert loop.step() is None
    kafka.read = dict(kafka.ends)
    assert loop.step() == at(61)
    assert kafka.sent == [(at(61), T)]
    assert kafka.newest_reads == 1  # the end offsets did not move: read once


def test_after_kafka_did_not_answer_the_silence_counts_again_from_then() -> None:
    kafka, now = FakeKafka(), [at(50)]
    loop = closer(kafka, now)
    kafka.answers = False
    assert loop.round() is None  # logged, not raised
    kafka.answers = True
    now[0] = at(100)  # 100 s since the event, but only 50 s since Kafka answered again
    assert loop.step() is None
    now[0] = at(111)
    assert loop.step() == at(111)
