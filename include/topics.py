"""Topic provisioning: create what is missing, report drift loudly, never change data.

Desired topics come from config/platform.toml.  Kafka can add partitions but never remove
them, and changing partition counts re-keys data, so drift is reported, not "fixed".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from include.kafka_client import admin
from include.settings import ANALYTICS, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


class TopicDriftError(RuntimeError):
    """Existing topics differ from the configuration in a way provisioning will not fix."""


def desired_topics(settings: Settings) -> list[TopicSpec]:
    k = settings.kafka
    retention = {"retention.ms": str(k.retention_ms)}
    specs = [
        TopicSpec(k.input_topic, k.partitions, k.replication_factor, retention),
        TopicSpec(k.dead_letter_topic, k.partitions, k.replication_factor, retention),
    ]
    specs += [
        TopicSpec(settings.output_topic(a), k.output_partitions, k.replication_factor, retention)
        for a in ANALYTICS
    ]
    return specs


def find_drift(spec: TopicSpec, partitions: int, replication_factor: int) -> list[str]:
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


def provision(settings: Settings, bootstrap_servers: str | None = None) -> dict[str, str]:
    """Create missing topics; raise TopicDriftError on drift. Returns topic -> action."""
    client = admin(bootstrap_servers or settings.bootstrap_servers)
    try:
        specs = desired_topics(settings)
        present = set(client.list_topics())
        names = [s.name for s in specs if s.name in present]
        existing = {t["name"]: t for t in client.describe_topics(names)} if names else {}
        actions: dict[str, str] = {}
        drift: list[str] = []
        missing = []
        for spec in specs:
            if spec.name in existing:
                parts = existing[spec.name]["partitions"]
                rf = len(parts[0]["replica_nodes"]) if parts else 0
                problems = find_drift(spec, len(parts), rf)
                drift += problems
                actions[spec.name] = "drift" if problems else "exists"
            else:
                missing.append(spec)
        if missing:
            try:
                client.create_topics(
                    [
                        NewTopic(
                            s.name, s.partitions, s.replication_factor, topic_configs=s.configs
                        )
                        for s in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # created concurrently by another run: fine, that is the goal
            for spec in missing:
                actions[spec.name] = "created"
                log.info(
                    "created topic %s (%d partitions, replication %d)",
                    spec.name,
                    spec.partitions,
                    spec.replication_factor,
                )
        for name, action in actions.items():
            if action == "exists":
                log.info("topic %s exists as configured", name)
        if drift:
            raise TopicDriftError("topic configuration drift:\n  - " + "\n  - ".join(drift))
        return actions
    finally:
        client.close()
