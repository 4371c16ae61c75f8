"""The secured profile, proven with a real broker: SASL_SSL (SCRAM-SHA-512 or PLAIN) over
TLS and mutual TLS, with certificates made for the test, and least-privilege ACLs
(include/kafka/acls.py).

A client without credentials, or with a wrong password, is refused; the producer may write
the input topic but not an output topic; the streaming user may read the input and write
the outputs, but not write the input.  In each mode every platform client (kafka-python,
Spark, the apache-kafka provider's derived connection) reaches the broker from the
settings alone; and the broker, started apart from the platform, serves as "your own
Kafka": `make up` starts no broker of its own and checks that this one answers.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from include.generators import EventGenerator
from include.kafka import acls as kafka_acls
from include.kafka.client import admin
from include.kafka.topics import provision
from include.runtime.kafka import SecuredKafka, scram_client_options
from include.runtime.own_kafka import check_own_kafka
from include.runtime.procs import free_port, port_owner
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.runtime.tls import make_broker_tls
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.streaming.progress import read_progress
from tests.conftest import poll
from tests.integration.dataset import as_bytes

pytestmark = pytest.mark.cluster

USERS = ("admin", "producer", "streaming")
# Client certificates for mutual TLS; the streaming user's key is encrypted.
KEY_PASSWORDS = {"admin": "", "producer": "", "streaming": secrets.token_urlsafe(12)}


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[tuple[Settings, SecuredKafka]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(tmp_path_factory.mktemp("secured_state")))
        mp.setenv("ECOM_KAFKA__PORT", str(free_port()))
        mp.setenv("ECOM_KAFKA__CONTROLLER_PORT", str(free_port()))
        settings = Settings()
        passwords = {user: secrets.token_urlsafe(16) for user in USERS}
        tls = make_broker_tls(
            settings.state / "tls", [settings.bind_host, "localhost"], clients=KEY_PASSWORDS
        )
        broker = SecuredKafka(settings, tls, passwords, mtls_port=free_port())
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
    include/kafka/acls.py are enough for it to read, commit batches and write outputs."""
    settings, broker = secured
    events = list(EventGenerator(seed=4).stream(datetime.now(UTC), timedelta(seconds=1), 400))
    writer = producer_for(settings, **as_user(broker, "producer"))
    for event in events:
        writer.send(
            settings.kafka.input_topic, key=event["user_id"].encode(), value=as_bytes(event)
        )
    writer.flush()
    writer.close()
    log = settings.paths.log_dir / "streaming-secured.log"
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
                for r in read_progress(settings.paths.metrics_dir)
                if r.get("name") == "revenue_by_category"
            ),
            lambda total: total >= len(events) or app.poll() is not None,
            f"the secured stream to read {len(events)} events (log: {log})",
            timeout=300,
            interval=1,
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


# ---- every mode, every client; and the broker as "your own Kafka" ----

MODES = ("SCRAM-SHA-512", "PLAIN", "mTLS")


def mode_env(settings: Settings, broker: SecuredKafka, mode: str, user: str) -> dict[str, str]:
    """The ECOM_* variables a user of your own Kafka sets for `mode` (README: "Use your own
    Kafka"): the brokers and [kafka.security], nothing else."""
    host, prefix = settings.bind_host, "ECOM_KAFKA__SECURITY__"
    env = {f"{prefix}SSL_CAFILE": str(broker.tls.ca_file)}
    if mode == "mTLS":
        cert, key = broker.tls.clients[user]
        env |= {
            "ECOM_KAFKA__BOOTSTRAP_SERVERS": f"{host}:{broker.mtls_port}",
            f"{prefix}PROTOCOL": "SSL",
            f"{prefix}SSL_CERTFILE": str(cert),
            f"{prefix}SSL_KEYFILE": str(key),
        }
        if KEY_PASSWORDS[user]:
            env[f"{prefix}SSL_KEY_PASSWORD"] = KEY_PASSWORDS[user]
        return env
    return env | {
        "ECOM_KAFKA__BOOTSTRAP_SERVERS": f"{host}:{broker.port}",
        f"{prefix}PROTOCOL": "SASL_SSL",
        f"{prefix}SASL_MECHANISM": mode,
        f"{prefix}USERNAME": user,
        f"{prefix}PASSWORD": broker.users[user],
    }


def settings_for(monkeypatch, env: dict[str, str]) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def admin_reads(settings: Settings, broker: SecuredKafka, topic: str) -> list[bytes]:
    """Every value of `topic`, read as the broker's admin (not through the settings)."""
    reader = KafkaConsumer(
        bootstrap_servers=f"{settings.bind_host}:{broker.port}",
        consumer_timeout_ms=5_000,
        **broker.client_options(),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or []]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        return [record.value for record in reader]
    finally:
        reader.close()


@pytest.mark.parametrize("mode", MODES)
def test_every_client_reaches_the_broker_from_the_settings_alone(
    secured, mode, monkeypatch
) -> None:
    """kafka-python (tasks) and confluent-kafka through the provider's kafka_default
    connection, derived as `make up` derives it, as the mode's users: each is who the
    broker's ACLs say (the producer may not write an output topic)."""
    from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

    from include.kafka.client import producer, read_to_end
    from include.runtime.airflow import airflow_environment

    settings, broker = secured
    marker = f"{mode}-{secrets.token_hex(4)}"
    with monkeypatch.context() as mp:
        as_producer = settings_for(mp, mode_env(settings, broker, mode, "producer"))
        client = producer(as_producer.bootstrap_servers, max_block_ms=15_000)
        try:
            client.send(settings.kafka.input_topic, marker.encode()).get(timeout=30)
            with pytest.raises(KafkaError, match=r"(?i)authorization"):
                client.send(settings.output_topic("revenue_by_category"), b"no").get(timeout=30)
        finally:
            client.close()
    with monkeypatch.context() as mp:
        as_streaming = settings_for(mp, mode_env(settings, broker, mode, "streaming"))
        records = read_to_end(as_streaming.bootstrap_servers, settings.kafka.input_topic)
        assert marker.encode() in [r.value for r in records]
        # The connection `make up` gives Airflow, used the provider's way.
        mp.setenv(
            "AIRFLOW_CONN_KAFKA_DEFAULT",
            airflow_environment(as_streaming)["AIRFLOW_CONN_KAFKA_DEFAULT"],
        )
        hook_producer = KafkaProducerHook(kafka_config_id="kafka_default").get_producer()
        errors: list = []
        hook_producer.produce(
            settings.output_topic("revenue_by_category"),
            value=marker.encode(),
            on_delivery=lambda err, _msg: errors.append(err),
        )
        assert hook_producer.flush(30) == 0
        assert errors == [None]
    assert marker.encode() in admin_reads(
        settings, broker, settings.output_topic("revenue_by_category")
    )


@pytest.mark.parametrize("mode", MODES)
def test_the_platform_producer_writes_in_every_mode_and_only_where_allowed(
    secured, mode, monkeypatch
) -> None:
    """The producer task's client (confluent-kafka) from the settings alone: every event of a
    short run acknowledged and in the topic; a run on an output topic fails."""
    from confluent_kafka import KafkaException

    import include.producer as producing

    settings, broker = secured
    before = len(admin_reads(settings, broker, settings.kafka.input_topic))
    with monkeypatch.context() as mp:
        as_producer = settings_for(mp, mode_env(settings, broker, mode, "producer"))
        stats = producing.run_producer(
            as_producer.bootstrap_servers,
            settings.kafka.input_topic,
            producing.ProducerParams(rate=200, duration_seconds=1.5, seed=7),
        )
        assert stats.failed == 0, stats.last_error
        assert stats.acknowledged == stats.sent >= 200
        mp.setattr(producing, "FLUSH_SECONDS", 10)
        # librdkafka refuses the next send at once: the run (and the task) fails loudly.
        with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
            producing.run_producer(
                as_producer.bootstrap_servers,
                settings.output_topic("revenue_by_category"),
                producing.ProducerParams(rate=50, duration_seconds=2, seed=7),
            )
    values = admin_reads(settings, broker, settings.kafka.input_topic)
    assert len(values) - before == stats.sent
    assert json.loads(values[-1])["event_id"]


# SCRAM in Spark is the streaming application's own test above.
SPARK_MODES = ("PLAIN", "mTLS")


def test_spark_reads_in_the_new_modes(secured) -> None:
    """Spark's Kafka source with the options the Spark apps build from the settings."""
    settings, broker = secured
    marker = f"spark-{secrets.token_hex(4)}"
    writer = producer_for(settings, **as_user(broker, "producer"))
    writer.send(settings.kafka.input_topic, marker.encode()).get(timeout=30)
    writer.close()
    request = {
        "topic": settings.kafka.input_topic,
        "modes": {m: mode_env(settings, broker, m, "streaming") for m in SPARK_MODES},
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.cluster.read_with_spark"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    read = json.loads(result.stdout.strip().splitlines()[-1])
    assert {mode: marker in values for mode, values in read.items()} == dict.fromkeys(
        SPARK_MODES, True
    )


def test_make_up_uses_your_own_kafka_and_starts_no_broker(secured, monkeypatch, capsys) -> None:
    """With [kafka] bootstrap_servers set: no Kafka among the platform's services, `make up`'s
    Kafka step only checks that the brokers answer, `make status` shows them, and the
    platform's topic provisioning creates its topics there."""
    from include.runtime import cli
    from include.runtime.procs import PlatformError

    settings, broker = secured
    with monkeypatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(settings.state / "platform"))
        mp.setenv("ECOM_KAFKA__INPUT_TOPIC", "own-events")
        mp.setenv("ECOM_KAFKA__DEAD_LETTER_TOPIC", "own-events-dlq")
        mp.setenv("ECOM_KAFKA__OUTPUT_TOPIC_PREFIX", "own.")
        # A port nothing listens on: a broker the platform started would be found there.
        mp.setenv("ECOM_KAFKA__PORT", str(free_port()))
        mine = settings_for(mp, mode_env(settings, broker, "PLAIN", "admin"))
        assert [s.name for s in cli.all_services(mine) if "kafka" in s.name] == []
        cli.prepare_kafka(mine)
        said = capsys.readouterr().out
        assert f"using your Kafka at {settings.bind_host}:{broker.port} (SASL_SSL, PLAIN" in said
        assert "no local broker is started" in said and "your Kafka answers" in said
        assert not (mine.paths.run_dir / "kafka.pid").exists()
        assert port_owner(mine.bind_host, mine.kafka.port) is None
        provision(mine)
        cli.status(mine)
        table = capsys.readouterr().out
        assert re.search(r"kafka \(yours\)\s+-\s+-\s+\S+:\d+ \(SASL_SSL.*yes", table), table
        mp.setenv("ECOM_KAFKA__SECURITY__PASSWORD", "not-the-password")
        with pytest.raises(PlatformError, match="ECOM_KAFKA__SECURITY__PASSWORD"):
            check_own_kafka(Settings(), timeout_s=5)
    client = admin(f"{settings.bind_host}:{broker.port}", **broker.client_options())
    try:
        topics = set(client.list_topics())
    finally:
        client.close()
    assert {"own-events", "own-events-dlq", "own.revenue_by_category"} <= topics
