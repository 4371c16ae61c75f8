"""The cluster topology of docker-compose.yaml, proven here with processes.

On this machine: a 3-node Kafka KRaft cluster (each node broker and controller, own ports
and data dir; topics with replication factor 3 and min.insync.replicas 2) and a Spark
standalone master with a worker.  The producer writes with acks=all; the streaming
application runs against both (client deploy mode, as Python apps on a standalone cluster
must); one broker is killed with SIGKILL mid-stream.  Then every acknowledged event must
be in the input topic, and every sink table must equal the oracle over that topic.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from include.kafka.client import admin, producer, read_to_end
from include.kafka.topics import provision
from include.runtime.kafka import Kafka, KafkaNode
from include.runtime.procs import free_port
from include.runtime.spark import SparkMaster, SparkWorker
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import Settings
from include.streaming.progress import read_progress
from tests.conftest import C1_ONLY, poll
from tests.integration.dataset import (
    NAIVE_ZONE,
    ORACLES,
    as_bytes,
    expected_rows,
    seeded_events,
    table_rows,
)

pytestmark = pytest.mark.cluster

NODES = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[Settings, list[Kafka], SparkMaster]]:
    nodes = [KafkaNode(i, free_port(), free_port()) for i in range(1, NODES + 1)]
    host = "127.0.0.1"
    env = {
        "ECOM_STATE_DIR": str(tmp_path_factory.mktemp("cluster_state")),
        "ECOM_KAFKA__BOOTSTRAP_SERVERS": ",".join(f"{host}:{n.port}" for n in nodes),
        "ECOM_KAFKA__REPLICATION_FACTOR": "3",
        "ECOM_KAFKA__MIN_INSYNC_REPLICAS": "2",
        "ECOM_ANALYTICS__WATERMARK_SECONDS": "60",
        "ECOM_SPARK__TRIGGER_SECONDS": "5",
        # A transactional call stuck since the kill (librdkafka #5456) is given up sooner.
        "ECOM_KAFKA__TRANSACTION_CALL_TIMEOUT_SECONDS": "10",
        # The shared data set's tutorial-format events carry zone-less times in this zone.
        "ECOM_EVENTS__NAIVE_TIMEZONE": NAIVE_ZONE,
        # The master and the worker live for this module: C1 only, as the tests' drivers.
        "SPARK_DAEMON_JAVA_OPTS": C1_ONLY,
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
        brokers = [Kafka(settings, node, nodes) for node in nodes]
        master = SparkMaster(settings, free_port(), free_port())
        worker = SparkWorker(settings, master, 1, free_port(), free_port())
        mp.setenv("ECOM_SPARK__MASTER", master.url)
        try:
            # A KRaft node answers only once a quorum of controllers is up: start together.
            with ThreadPoolExecutor(NODES) as pool:
                list(pool.map(lambda broker: broker.start(), brokers))
            master.start()
            worker.start()
            yield Settings(), brokers, master
        finally:
            worker.stop(timeout=30)
            master.stop(timeout=30)
            # Together and briefly: a node's controlled shutdown waits for a controller
            # quorum that the others, stopping too, are taking away; its data is scrap.
            with ThreadPoolExecutor(NODES) as pool:
                list(pool.map(lambda broker: broker.stop(timeout=5), brokers))


def send_tracked(settings: Settings, events: list[dict]) -> set[str]:
    """Send with acks=all; the event ids the cluster acknowledged."""
    client = producer(settings.bootstrap_servers)
    topic = settings.kafka.input_topic
    sends = [
        (e["event_id"], client.send(topic, key=e["user_id"].encode(), value=as_bytes(e)))
        for e in events
    ]
    client.flush()
    acknowledged = set()
    for event_id, future in sends:
        if future.succeeded():
            acknowledged.add(event_id)
    client.close()
    return acknowledged


def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    """The topic's non-default configs: {key: value}."""
    client = admin(settings.bootstrap_servers)
    try:
        found = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        client.close()
    # {resource type: {resource name: {key: {config data}}}}
    (by_name,) = found.values()
    return {key: data["value"] for key, data in by_name[topic].items()}


def test_topics_are_replicated_three_times_with_two_in_sync_required(cluster) -> None:
    settings, _, _ = cluster
    provision(settings)
    client = admin(settings.bootstrap_servers)
    try:
        (described,) = client.describe_topics([settings.kafka.input_topic])
    finally:
        client.close()
    assert {len(p["replica_nodes"]) for p in described["partitions"]} == {3}
    assert {len(p["isr_nodes"]) for p in described["partitions"]} == {3}
    assert topic_config(settings, settings.kafka.input_topic)["min.insync.replicas"] == "2"


def wait_for_rows(settings, analytic, expected, app, log) -> pd.DataFrame:
    return poll(
        lambda: table_rows(analytic, settings, expected.columns),
        lambda frame: len(frame) >= len(expected) or app.poll() is not None,
        f"{len(expected)} {analytic} rows (log: {log})",
        timeout=420,
        interval=1,
    )


def test_a_broker_killed_mid_stream_loses_no_acknowledged_event(cluster) -> None:
    settings, brokers, master = cluster
    sent, flush = seeded_events()
    half = len(sent) // 2
    log = settings.paths.log_dir / "streaming-cluster.log"
    app = launch_app(
        settings,
        STREAMING_APP,
        log,
        master=master.url,
        conf={"spark.executor.extraJavaOptions": C1_ONLY},
    )
    try:
        acknowledged = send_tracked(settings, sent[:half])
        poll(
            lambda: [r for r in read_progress(settings.paths.metrics_dir) if r.get("numInputRows")],
            lambda found: len(found) > 0 and app.poll() is None,
            f"the streaming app on {master.url} to process input (log: {log})",
            timeout=300,
            interval=1,
        )
        victim = brokers[1]
        os.kill(victim.pid(), signal.SIGKILL)
        acknowledged |= send_tracked(settings, sent[half:] + flush)
        assert acknowledged == {e["event_id"] for e in sent + flush}, "a write was refused"

        records = read_to_end(settings.bootstrap_servers, settings.kafka.input_topic)
        in_topic = [json.loads(r.value) for r in records]
        assert acknowledged <= {e["event_id"] for e in in_topic}, "an acknowledged event is lost"

        flush_ids = {e["event_id"] for e in flush}
        stored = [e for e in in_topic if e["event_id"] not in flush_ids]
        stored_flush = [e for e in in_topic if e["event_id"] in flush_ids]
        for analytic in ORACLES:
            expected = expected_rows(analytic, stored, stored_flush, settings)
            got = wait_for_rows(settings, analytic, expected, app, log)
            assert app.poll() is None, f"the streaming app exited; see {log}"
            pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(60)
        except Exception:
            app.kill()
