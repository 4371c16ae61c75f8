"""Topic specs come from the config; drift is described, never silently accepted."""

from __future__ import annotations

from include.kafka.topics import TopicSpec, desired_topics, find_drift
from include.settings import Settings


def test_desired_topics_follow_the_config(monkeypatch):
    monkeypatch.setenv("ECOM_KAFKA__PARTITIONS", "5")
    monkeypatch.setenv("ECOM_KAFKA__INPUT_TOPIC", "events-x")
    specs = {s.name: s for s in desired_topics(Settings())}
    assert specs["events-x"].partitions == 5
    assert specs["ecommerce-events-dlq"].partitions == 5
    assert "analytics.revenue_by_category" in specs


def test_fewer_partitions_than_configured_is_drift():
    spec = TopicSpec("t", 3, 1, {})
    (problem,) = find_drift(spec, partitions=1, replication_factor=1)
    assert "has 1 partitions but 3 are configured" in problem


def test_more_partitions_or_matching_topic_is_not_drift():
    spec = TopicSpec("t", 3, 1, {})
    assert find_drift(spec, partitions=3, replication_factor=1) == []
    assert find_drift(spec, partitions=6, replication_factor=1) == []


def test_replication_mismatch_is_drift():
    (problem,) = find_drift(TopicSpec("t", 3, 3, {}), partitions=3, replication_factor=1)
    assert "replication factor 1 but 3" in problem
