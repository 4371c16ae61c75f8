"""Producer parameters fail fast with a message that says what to fix; the send path's own
logic (record values, a full local queue, events unanswered at the end) runs against a
stand-in for confluent-kafka's Producer."""

from __future__ import annotations

import json

import pytest

from include.producer import ProducerParams


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (ProducerParams(rate=-5), "rate must be a positive number"),
        (ProducerParams(rate=0), "rate must be a positive number"),
        (ProducerParams(rate=10, duration_seconds=-1), "duration_seconds must be 0"),
        (ProducerParams(rate=10, users=0), "users and products must be at least 1"),
        (
            ProducerParams(rate=10, event_format="csv"),
            "event_format must be one of platform, tutorial",
        ),
    ],
)
def test_invalid_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        params.validate()


def test_valid_parameters_pass():
    assert ProducerParams(rate=0.5, duration_seconds=0).validate().rate == 0.5


def test_both_event_formats_pass():
    for event_format in ("platform", "tutorial"):
        assert ProducerParams(rate=1, event_format=event_format).validate().event_format == (
            event_format
        )


class FakeProducer:
    """confluent-kafka's Producer as run_producer uses it: produce() queues, poll() and
    flush() answer what is queued through the delivery callbacks; `full` BufferErrors
    first, as librdkafka raises them when its local queue is full."""

    def __init__(self, config: dict | None = None, full: int = 0, answer: bool = True) -> None:
        self.config = config or {}
        self.full = full
        self.answer = answer
        self.queued: list = []
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.polls: list[float] = []
        self.purged = self.closed = False

    def produce(self, topic, value, key, on_delivery) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.sent.append((topic, key, value))
        self.queued.append(on_delivery)

    def poll(self, timeout: float = 0) -> int:
        self.polls.append(timeout)
        if not self.answer:
            return 0
        answered, self.queued = self.queued, []
        for callback in answered:
            callback(None, object())
        return len(answered)

    def flush(self, timeout: float = 0) -> int:
        self.poll(timeout)
        return len(self.queued)

    def purge(self) -> None:
        self.purged = True
        self.answer = True
        purged, self.queued = self.queued, []
        for callback in purged:
            callback("KafkaError{code=_PURGE_QUEUE}", object())

    def close(self) -> bool:
        self.closed = True
        return True


@pytest.fixture
def fake_client(monkeypatch):
    """run_producer's client replaced: the fakes it built, in order."""
    import include.producer as producer_module

    built: list[FakeProducer] = []

    def build(bootstrap_servers, overrides=None):
        built.append(FakeProducer({"bootstrap.servers": bootstrap_servers, **(overrides or {})}))
        return built[-1]

    monkeypatch.setattr(producer_module, "confluent_producer", build)
    return built


def test_values_are_compact_json_unless_an_encoder_is_given(fake_client) -> None:
    from include.producer import run_producer

    params = ProducerParams(rate=2_000, duration_seconds=0.1, seed=3)
    stats = run_producer("b:9092", "events", params, report_every=0.05)
    (client,) = fake_client
    assert stats.sent == len(client.sent) > 0
    assert (stats.acknowledged, stats.failed) == (stats.sent, 0)
    topic, key, value = client.sent[0]
    event = json.loads(value)
    assert (topic, key) == ("events", event["user_id"].encode())
    assert value == json.dumps(event, separators=(",", ":")).encode()
    assert client.closed

    stats = run_producer(
        "b:9092", "events", params, value_encoder=lambda e: b"<" + e["user_id"].encode()
    )
    client = fake_client[1]
    assert all(value == b"<" + key for _, key, value in client.sent)
    assert stats.acknowledged == stats.sent == len(client.sent)


def test_the_tutorial_format_keeps_its_blanks_and_snappy(fake_client) -> None:
    from include.producer import run_producer

    params = ProducerParams(rate=500, duration_seconds=0.05, event_format="tutorial")
    run_producer("b:9092", "events", params)
    (client,) = fake_client
    assert client.config["compression.type"] == "snappy"
    assert b'", "' in client.sent[0][2]  # json.dumps's default separators


def test_a_full_local_queue_waits_and_retries_never_drops() -> None:
    from include.producer import FULL_QUEUE_WAIT_SECONDS, DeliveryStats, send_event

    client = FakeProducer(full=3, answer=False)
    stats = DeliveryStats()
    send_event(client, "events", {"user_id": "u1", "n": 1}, stats)
    assert client.sent == [("events", b"u1", b'{"user_id":"u1","n":1}')]
    assert stats.sent == 1
    # Three waits for room (callbacks served meanwhile), then the poll after the send.
    assert client.polls == [FULL_QUEUE_WAIT_SECONDS] * 3 + [0]


def test_events_still_unanswered_after_the_flush_count_as_failed(monkeypatch) -> None:
    import include.producer as producer_module

    class Silent(FakeProducer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs, answer=False)

    monkeypatch.setattr(producer_module, "confluent_producer", lambda *a, **k: Silent())
    stats = producer_module.run_producer(
        "b:9092", "events", ProducerParams(rate=1_000, duration_seconds=0.05)
    )
    assert stats.sent > 0
    assert (stats.acknowledged, stats.failed, stats.unanswered) == (0, stats.sent, 0)
    assert "PURGE" in (stats.last_error or "")


def test_delivery_callbacks_count_answers_and_keep_the_last_error() -> None:
    from include.producer import DeliveryStats

    stats = DeliveryStats(sent=3)
    stats.delivered(None, object())
    stats.delivered("Broker: Not enough in-sync replicas", object())
    assert (stats.acknowledged, stats.failed, stats.unanswered) == (1, 1, 1)
    assert stats.last_error == "Broker: Not enough in-sync replicas"
