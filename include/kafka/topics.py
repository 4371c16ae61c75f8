"""Topic provisioning: create what is missing, report drift loudly, never change data.

Desired topics come from config/platform.toml.  Kafka can add partitions but never remove
them, and changing partition counts re-keys data, so drift is reported, not "fixed".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from include.analytics import ANALYTIC_NAMES
from include.kafka.client import admin
from include.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the configuration wants it."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


class TopicDriftError(RuntimeError):
    """Existing topics differ from the configuration in a way provisioning will not fix."""


def desired_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the configuration asks for: the input, the dead letters, the idle rule's
    control records and one output topic per analytic, each with the configured retention
    and min in-sync replicas."""
    k = settings.kafka
    retention = {
        "retention.ms": str(k.retention_ms),
        # With acks=all, a write needs this many in-sync replicas or it is refused.
        "min.insync.replicas": str(k.min_insync_replicas),
    }
    specs = [
        TopicSpec(k.input_topic, k.partitions, k.replication_factor, retention),
        TopicSpec(k.dead_letter_topic, k.partitions, k.replication_factor, retention),
        # The watermark is the query's, not a partition's: one partition carries it.
        TopicSpec(k.control_topic, 1, k.replication_factor, retention),
    ]
    specs += [
        TopicSpec(settings.output_topic(a), k.output_partitions, k.replication_factor, retention)
        for a in ANALYTIC_NAMES
    ]
    return specs


def find_drift(spec: TopicSpec, partitions: int, replication_factor: int) -> list[str]:
    """How a topic of `partitions` and `replication_factor` differs from `spec`, in sentences
    that say how to fix it ([] when it does not).  More partitions than configured is fine."""
    problems = []
    if partitions < spec.partitions:
        problems.append(
            f"topic {spec.name} has {partitions} partitions but {spec.partitions} are "
            f"configured: add partitions with kafka-topics --alter --partitions "
            f"{spec.partitions} (keys will map to new partitions) or lower the config"
        )
    if replication_factor != spec.replication_factor:
        problems.append(
            f"topic {spec.name} has replication factor {replication_factor} but "
            f"{spec.replication_factor} is configured: reassign partitions to change it"
        )
    return problems


def describe_when_ready(client, names: list[str], timeout_s: float = 15.0) -> dict[str, dict]:
    """Describe topics, waiting until a just-created topic shows its partitions: metadata
    reaches the broker a moment after CreateTopics returns, and an empty partition list
    would read as drift."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = {t["name"]: t for t in client.describe_topics(names)}
        ready = all(
            described.get(n, {}).get("error_code") == 0 and described[n]["partitions"]
            for n in names
        )
        if ready or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def provision(settings: Settings, bootstrap_servers: str | None = None) -> dict[str, str]:
    """Create missing topics; raise TopicDriftError on drift. Returns topic -> action.

    Drift is checked on what the broker describes *after* creation, for every topic: a
    topic that another client created a moment earlier (so ours got "already exists") is
    checked like any other, not assumed to be as configured.
    """
    client = admin(bootstrap_servers or settings.bootstrap_servers)
    try:
        specs = desired_topics(settings)
        present = set(client.list_topics())
        actions: dict[str, str] = {}
        for spec in specs:
            if spec.name in present:
                continue
            try:
                client.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            spec.replication_factor,
                            topic_configs=spec.configs,
                        )
                    ]
                )
                actions[spec.name] = "created"
                log.info(
                    "created topic %s (%d partitions, replication %d)",
                    spec.name,
                    spec.partitions,
                    spec.replication_factor,
                )
            except TopicAlreadyExistsError:
                log.info("topic %s was created concurrently by another client", spec.name)
        described = describe_when_ready(client, [s.name for s in specs])
        drift: list[str] = []
        for spec in specs:
            parts = described[spec.name]["partitions"]
            problems = find_drift(spec, len(parts), len(parts[0]["replica_nodes"]) if parts else 0)
            drift += problems
            if problems:
                actions[spec.name] = "drift"
            elif spec.name not in actions:
                actions[spec.name] = "exists"
                log.info("topic %s exists as configured", spec.name)
        if drift:
            raise TopicDriftError("topic configuration drift:\n  - " + "\n  - ".join(drift))
        return actions
    finally:
        client.close()
