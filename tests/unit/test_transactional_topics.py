"""The Kafka transaction's retry logic (spark_jobs/output_topics.py), on fake producers: a call that
never returns (librdkafka's send_offsets_to_transaction while the group coordinator is
away) costs a new producer and a retry, not the batch."""

from __future__ import annotations

import threading
import time

import pytest

from spark_jobs import output_topics
from spark_jobs.output_topics import StuckCall, TransactionalTopics, bounded


def test_bounded_returns_the_value_or_raises_the_error() -> None:
    assert bounded(lambda: 42, 5, "value") == 42
    with pytest.raises(ValueError, match="bad"):
        bounded(lambda: (_ for _ in ()).throw(ValueError("bad")), 5, "error")


def test_bounded_gives_up_on_a_call_that_does_not_return() -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(StuckCall, match="stuck did not return"):
        bounded(release.wait, 0.2, "stuck")
    assert time.monotonic() - started < 5
    release.set()


class FakeProducer:
    """Records the calls; `hang` names the call that blocks until the test ends."""

    def __init__(self, hang: str = "", release: threading.Event | None = None) -> None:
        self.hang = hang
        self.release = release or threading.Event()
        self.calls: list[str] = []
        self.sent: list[tuple[str, bytes]] = []

    def _maybe_hang(self, name: str) -> None:
        self.calls.append(name)
        if name == self.hang:
            self.release.wait()

    def begin_transaction(self) -> None:
        self._maybe_hang("begin")

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, value))

    def poll(self, timeout: float) -> None:
        pass

    def send_offsets_to_transaction(self, offsets, group, timeout) -> None:
        self._maybe_hang("send_offsets")

    def commit_transaction(self, timeout) -> None:
        self._maybe_hang("commit")

    def abort_transaction(self, timeout) -> None:
        self._maybe_hang("abort")


@pytest.fixture
def topics(monkeypatch, tmp_path):
    """A TransactionalTopics without clients of its own: its producer is a FakeProducer
    whose offsets call hangs; a new producer is a healthy one."""
    monkeypatch.setattr(output_topics, "STUCK_GRACE_SECONDS", 0.0)
    monkeypatch.setattr(output_topics.time, "sleep", lambda seconds: None)
    release = threading.Event()
    stuck, healthy = FakeProducer("send_offsets", release), FakeProducer()
    made: list[FakeProducer] = []

    def new_producer() -> FakeProducer:
        made.append(healthy)
        return healthy

    writer = TransactionalTopics.__new__(TransactionalTopics)
    writer.input_topic = "events"
    writer.state_dir = tmp_path
    writer.group = object()
    writer.timeout_seconds = 0.2
    writer.producer = stuck
    monkeypatch.setattr(writer, "_new_producer", new_producer)
    monkeypatch.setattr(writer, "last_batch", lambda query_id: None)
    yield writer, stuck, healthy, made
    release.set()


def test_a_stuck_offsets_call_costs_a_new_producer_and_a_retry(topics) -> None:
    writer, stuck, healthy, made = topics
    records = [("out.a", b"k1", b"v1"), ("out.b", b"k2", b"v2")]

    assert writer.send(records, "query", 7, {"0": 10}) is True

    # The stuck producer was left behind (never committed); the new one sent every record
    # of the batch once and committed.
    assert "commit" not in stuck.calls
    assert made == [healthy]
    assert writer.producer is healthy
    assert healthy.calls == ["begin", "send_offsets", "commit"]
    assert healthy.sent == [("out.a", b"v1"), ("out.b", b"v2")]


def test_a_batch_committed_before_is_not_sent_again(topics, monkeypatch) -> None:
    writer, stuck, _, _ = topics
    monkeypatch.setattr(writer, "last_batch", lambda query_id: 7)
    assert writer.send([("out.a", b"k", b"v")], "query", 7, {"0": 10}) is False
    assert stuck.calls == [] and stuck.sent == []


def test_the_batch_fails_after_every_try_is_stuck(topics, monkeypatch) -> None:
    writer, _, _, _ = topics
    release = threading.Event()
    monkeypatch.setattr(writer, "_new_producer", lambda: FakeProducer("commit", release))
    try:
        with pytest.raises(StuckCall, match="commit did not return"):
            writer.send([("out.a", b"k", b"v")], "query", 3, {"0": 1})
    finally:
        release.set()
