"""Least-privilege ACLs for the pipeline on a secured Kafka (StandardAuthorizer).

* the producer may write (and describe) the input topic, nothing else;
* the streaming job may read the input topic, write its outputs (the per-analytic topics
  and the dead-letter topic) in transactions (``ecom-pipeline-*``), read and write the idle
  rule's control topic, and use Spark's consumer groups (``spark-kafka-source-*``) and its
  own (``ecom-*``: the sink's record of the batches it sent, the idle rule's reads).

Anything not granted is refused (``allow.everyone.if.no.acl.found=false``).
"""

from __future__ import annotations

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from include.settings import Settings

SPARK_GROUP_PREFIX = "spark-kafka-source"
# The streaming app's own consumer groups and transactional ids (spark_jobs.sinks, .idle).
PIPELINE_PREFIX = "ecom-"


def _allow(user: str, kind: ResourceType, name: str, op: ACLOperation, prefixed=False) -> ACL:
    pattern = ACLResourcePatternType.PREFIXED if prefixed else ACLResourcePatternType.LITERAL
    return ACL(
        principal=f"User:{user}",
        host="*",
        operation=op,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(kind, name, pattern),
    )


def pipeline_acls(settings: Settings, producer_user: str, streaming_user: str) -> list[ACL]:
    """The ACLs of the module docstring, for the producer's and the streaming job's users."""
    k = settings.kafka
    topic, read, write, describe = (
        ResourceType.TOPIC,
        ACLOperation.READ,
        ACLOperation.WRITE,
        ACLOperation.DESCRIBE,
    )
    return [
        _allow(producer_user, topic, k.input_topic, write),
        _allow(producer_user, topic, k.input_topic, describe),
        _allow(streaming_user, topic, k.input_topic, read),
        _allow(streaming_user, topic, k.input_topic, describe),
        _allow(streaming_user, topic, k.output_topic_prefix, write, prefixed=True),
        _allow(streaming_user, topic, k.output_topic_prefix, describe, prefixed=True),
        _allow(streaming_user, topic, k.dead_letter_topic, write),
        _allow(streaming_user, topic, k.dead_letter_topic, describe),
        _allow(streaming_user, topic, k.control_topic, read),
        _allow(streaming_user, topic, k.control_topic, write),
        _allow(streaming_user, topic, k.control_topic, describe),
        _allow(streaming_user, ResourceType.GROUP, SPARK_GROUP_PREFIX, read, prefixed=True),
        _allow(streaming_user, ResourceType.GROUP, PIPELINE_PREFIX, read, prefixed=True),
        _allow(streaming_user, ResourceType.GROUP, PIPELINE_PREFIX, describe, prefixed=True),
        _allow(
            streaming_user, ResourceType.TRANSACTIONAL_ID, PIPELINE_PREFIX, write, prefixed=True
        ),
        _allow(
            streaming_user,
            ResourceType.TRANSACTIONAL_ID,
            PIPELINE_PREFIX,
            describe,
            prefixed=True,
        ),
    ]


def grant(admin_client, acls: list[ACL]) -> None:
    """Create the ACLs (idempotent: Kafka keeps one copy of an identical ACL)."""
    result = admin_client.create_acls(acls)
    failed = result.get("failed") or []
    if failed:
        raise RuntimeError(f"Kafka refused {len(failed)} ACL(s): {failed}")
