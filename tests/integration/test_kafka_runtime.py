"""On a real broker: topics are provisioned idempotently, drift fails loudly, the producer
loses nothing."""

from __future__ import annotations

import json

import pytest
from kafka.admin import NewTopic

from include.kafka.client import admin, read_to_end
from include.kafka.topics import TopicDriftError, desired_topics, provision
from include.producer import ProducerParams, run_producer
from include.settings import Settings

pytestmark = pytest.mark.integration


def test_provision_creates_then_leaves_alone(kafka, settings):
    first = provision(settings)
    assert set(first) == {s.name for s in desired_topics(settings)}
    second = provision(settings)
    assert set(second.values()) == {"exists"}
    client = admin(settings.bootstrap_servers)
    described = {t["name"]: t for t in client.describe_topics(list(first))}
    client.close()
    assert len(described[settings.kafka.input_topic]["partitions"]) == settings.kafka.partitions


def test_fewer_partitions_than_configured_fails_with_the_fix(kafka, settings, monkeypatch):
    client = admin(settings.bootstrap_servers)
    client.create_topics([NewTopic("drifted-events", 1, 1)])
    client.close()
    monkeypatch.setenv("ECOM_KAFKA__INPUT_TOPIC", "drifted-events")
    with pytest.raises(TopicDriftError, match="drifted-events has 1 partitions but 3"):
        provision(Settings())


def test_producer_delivers_every_event_once_keyed_by_user(kafka, settings):
    topic = "producer-check"
    client = admin(settings.bootstrap_servers)
    client.create_topics([NewTopic(topic, 3, 1)])
    client.close()
    stats = run_producer(
        settings.bootstrap_servers, topic, ProducerParams(rate=1500, duration_seconds=3, seed=3)
    )
    assert stats.failed == 0
    assert stats.acknowledged == stats.sent > 3000
    records = read_to_end(settings.bootstrap_servers, topic)
    events = [json.loads(r.value) for r in records]
    assert len(records) == stats.sent
    assert len({e["event_id"] for e in events}) == stats.sent
    assert all(r.key.decode() == json.loads(r.value)["user_id"] for r in records)
