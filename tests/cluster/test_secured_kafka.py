"""The secured profile, proven with a real broker: SASL_SSL (SCRAM-SHA-512) over TLS with
certificates made for the test, and least-privilege ACLs (include/kafka_acls.py).

A client without credentials, or with a wrong password, is refused; the producer may write
the input topic but not an output topic; the streaming user may read the input and write
the outputs, but not write the input.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from include import kafka_acls
from include.events import EventGenerator
from include.kafka_client import admin
from include.progress import read_progress
from include.runtime.kafka import SecuredKafka, scram_client_options
from include.runtime.procs import free_port
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.runtime.tls import make_broker_tls
from include.settings import Settings
from include.topics import provision
from tests.conftest import poll
from tests.integration.dataset import as_bytes

pytestmark = pytest.mark.cluster

USERS = ("admin", "producer", "streaming")


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[tuple[Settings, SecuredKafka]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(tmp_path_factory.mktemp("secured_state")))
        mp.setenv("ECOM_KAFKA__PORT", str(free_port()))
        mp.setenv("ECOM_KAFKA__CONTROLLER_PORT", str(free_port()))
        settings = Settings()
        passwords = {user: secrets.token_urlsafe(16) for user in USERS}
        tls = make_broker_tls(settings.state / "tls", [settings.bind_host, "localhost"])
        broker = SecuredKafka(settings, tls, passwords)
        try:
            broker.start()
            # The platform's own provisioning and ACLs, as the admin user.
            mp.setenv("ECOM_KAFKA__SECURITY__PROTOCOL", "SASL_SSL")
            mp.setenv("ECOM_KAFKA__SECURITY__USERNAME", "admin")
            mp.setenv("ECOM_KAFKA__SECURITY__PASSWORD", passwords["admin"])
            mp.setenv("ECOM_KAFKA__SECURITY__SSL_CAFILE", str(tls.ca_file))
            provision(settings)
            client = admin(settings.bootstrap_servers)
            kafka_acls.grant(client, kafka_acls.pipeline_acls(settings, "producer", "streaming"))
            client.close()
            for name in ("PROTOCOL", "USERNAME", "PASSWORD", "SSL_CAFILE"):
                mp.delenv(f"ECOM_KAFKA__SECURITY__{name}")
            yield settings, broker
        finally:
            broker.stop(timeout=30)


def as_user(broker: SecuredKafka, user: str, password: str | None = None) -> dict:
    return scram_client_options(user, password or broker.users[user], broker.tls)


def producer_for(settings: Settings, **options) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        **{"acks": "all", "max_block_ms": 15_000, "request_timeout_ms": 15_000, **options},
    )


def refused_logins(broker: SecuredKafka) -> int:
    return broker.log_file.read_text(errors="replace").count(
        "invalid credentials with SASL mechanism SCRAM-SHA-512"
    )


def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(secured) -> None:
    settings, broker = secured
    with pytest.raises(KafkaError):  # plain TCP on a TLS port: no broker answers
        KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            request_timeout_ms=5_000,
            bootstrap_timeout_ms=5_000,
        )
    # kafka-python reports a refused login as "unable to bootstrap", with the reason in its
    # log or only a closed socket (it races the broker's close); the broker's log says why.
    refusals_before = refused_logins(broker)
    wrong = as_user(broker, "producer", password="not-the-password")
    with pytest.raises(KafkaError):
        producer_for(settings, bootstrap_timeout_ms=5_000, **wrong)
    poll(
        lambda: refused_logins(broker),
        lambda count: count > refusals_before,
        "the broker to log the refused login",
        timeout=10,
    )


def test_the_producer_writes_the_input_topic_and_nothing_else(secured) -> None:
    settings, broker = secured
    client = producer_for(settings, **as_user(broker, "producer"))
    try:
        written = client.send(settings.kafka.input_topic, b"allowed").get(timeout=30)
        assert written.offset >= 0
        output = settings.output_topic("revenue_by_category")
        with pytest.raises(KafkaError, match=r"(?i)authorization"):
            client.send(output, b"forbidden").get(timeout=30)
    finally:
        client.close()


def test_the_streaming_user_reads_the_input_and_writes_outputs_only(secured) -> None:
    settings, broker = secured
    options = as_user(broker, "streaming")
    reader = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, consumer_timeout_ms=10_000, **options
    )
    try:
        partitions = [TopicPartition(settings.kafka.input_topic, p) for p in range(3)]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        values = [record.value for record in reader]
        assert b"allowed" in values
    finally:
        reader.close()
    writer = producer_for(settings, **options)
    try:
        output = settings.output_topic("revenue_by_category")
        assert writer.send(output, b"a result").get(timeout=30).offset >= 0
        assert writer.send(settings.kafka.dead_letter_topic, b"bad").get(timeout=30).offset >= 0
        with pytest.raises(KafkaError, match=r"(?i)authorization"):
            writer.send(settings.kafka.input_topic, b"forged event").get(timeout=30)
    finally:
        writer.close()


def test_the_streaming_application_runs_with_only_its_acls(secured) -> None:
    """Spark's Kafka source and sink, as the streaming user over SASL_SSL: the ACLs of
    include/kafka_acls.py are enough for it to read, commit batches and write outputs."""
    settings, broker = secured
    events = list(EventGenerator(seed=4).stream(datetime.now(UTC), timedelta(seconds=1), 400))
    writer = producer_for(settings, **as_user(broker, "producer"))
    for event in events:
        writer.send(
            settings.kafka.input_topic, key=event["user_id"].encode(), value=as_bytes(event)
        )
    writer.flush()
    writer.close()
    log = settings.log_dir / "streaming-secured.log"
    env = {
        "ECOM_KAFKA__SECURITY__PROTOCOL": "SASL_SSL",
        "ECOM_KAFKA__SECURITY__USERNAME": "streaming",
        "ECOM_KAFKA__SECURITY__PASSWORD": broker.users["streaming"],
        "ECOM_KAFKA__SECURITY__SSL_CAFILE": str(broker.tls.ca_file),
    }
    app = launch_app(settings, STREAMING_APP, log, env=env)
    try:
        read = poll(
            lambda: sum(
                r.get("numInputRows") or 0
                for r in read_progress(settings.metrics_dir)
                if r.get("name") == "revenue_by_category"
            ),
            lambda total: total >= len(events) or app.poll() is not None,
            f"the secured stream to read {len(events)} events (log: {log})",
            timeout=300,
            interval=3,
        )
        assert app.poll() is None, f"the streaming app exited; see {log}"
        assert read >= len(events)
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(60)
        except subprocess.TimeoutExpired:
            app.kill()
    text = log.read_text(errors="replace")
    assert "AuthorizationException" not in text and "AuthenticationException" not in text
