"""[kafka.security] in each client's words, and the combinations refused at start.

The secured broker (tests/cluster/test_secured_kafka.py) proves the options work; these
pin what each mode puts in each client's options and what a bad combination says.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from include.kafka.security import kafka_client_options, spark_kafka_options
from include.settings import Settings

SEC = "ECOM_KAFKA__SECURITY__"


def with_env(monkeypatch, **values: str) -> Settings:
    for key, value in values.items():
        monkeypatch.setenv(f"{SEC}{key.upper()}", value)
    return Settings()


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"username": "me"}, "username set but protocol is PLAINTEXT"),
        ({"protocol": "SSL", "username": "me"}, "username/password are for SASL"),
        ({"protocol": "SASL_SSL", "username": "me"}, f"{SEC}PASSWORD"),
        ({"protocol": "SASL_SSL", "password": "pw"}, "SASL_SSL needs username"),
        ({"protocol": "SSL", "ssl_certfile": "/c.pem"}, "set ssl_keyfile too"),
        ({"protocol": "SSL", "ssl_key_password": "pw"}, "there is no ssl_keyfile"),
        ({"protocol": "SASL_PLAINTEXT"}, "protocol"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_a_combination_that_cannot_work_fails_saying_what_to_change(
    monkeypatch, values, says
) -> None:
    from include.settings.kafka import KafkaSecurityError

    with pytest.raises((KafkaSecurityError, ValueError), match=says) as refused:
        with_env(monkeypatch, **values)
    assert "pw" not in str(refused.value).replace("password", "")  # no value is repeated


def test_sasl_plain_over_tls_in_every_client(monkeypatch) -> None:
    from include.kafka.security import confluent_options

    settings = with_env(
        monkeypatch,
        protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        username="api-key",
        password='se"cr\\et',
    )
    assert kafka_client_options(settings) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "api-key",
        "sasl_plain_password": 'se"cr\\et',
    }
    spark = spark_kafka_options(settings)
    # JAAS needs the quote and the backslash escaped; no CA file: the system's trust store.
    assert spark["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="api-key" password="se\\"cr\\\\et";'
    )
    assert "kafka.ssl.truststore.location" not in spark
    assert confluent_options(settings.kafka.security, "b:9092") == {
        "bootstrap.servers": "b:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "api-key",
        "sasl.password": 'se"cr\\et',
    }


def test_mutual_tls_gives_java_the_key_as_unencrypted_pkcs8(monkeypatch, tmp_path) -> None:
    """A SEC1 key encrypted with a password, as OpenSSL writes it: kafka-python and
    confluent-kafka read the files; Spark (Java) gets the same key as PKCS#8 text."""
    from include.kafka.security import confluent_options

    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "client-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"key-pw"),
        )
    )
    cert_file = tmp_path / "client.pem"
    cert_file.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    settings = with_env(
        monkeypatch,
        protocol="SSL",
        ssl_cafile="/ca.pem",
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        ssl_key_password="key-pw",
    )
    assert kafka_client_options(settings) == {
        "security_protocol": "SSL",
        "ssl_cafile": "/ca.pem",
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_password": "key-pw",
    }
    spark = spark_kafka_options(settings)
    assert spark["kafka.security.protocol"] == "SSL"
    assert "kafka.sasl.jaas.config" not in spark
    assert spark["kafka.ssl.keystore.certificate.chain"] == cert_file.read_text()
    pem = spark["kafka.ssl.keystore.key"]
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    loaded = serialization.load_pem_private_key(pem.encode(), password=None)
    assert loaded.private_numbers() == key.private_numbers()
    assert confluent_options(settings.kafka.security, "b:9093") == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "SSL",
        "ssl.ca.location": "/ca.pem",
        "ssl.certificate.location": str(cert_file),
        "ssl.key.location": str(key_file),
        "ssl.key.password": "key-pw",
    }
    monkeypatch.setenv(f"{SEC}SSL_KEY_PASSWORD", "wrong")
    with pytest.raises(ValueError, match="cannot read the client key"):
        spark_kafka_options(Settings())


def test_the_kafka_default_connection_is_derived_from_the_settings(monkeypatch, tmp_path):
    from include.runtime.airflow import airflow_environment

    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ECOM_KAFKA__BOOTSTRAP_SERVERS", "k1:9093,k2:9093")
    settings = with_env(
        monkeypatch, protocol="SASL_SSL", username="svc", password="pw", ssl_cafile="/ca.pem"
    )
    connection = json.loads(airflow_environment(settings)["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert connection == {
        "conn_type": "kafka",
        "extra": {
            "bootstrap.servers": "k1:9093,k2:9093",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "svc",
            "sasl.password": "pw",
            "ssl.ca.location": "/ca.pem",
        },
    }


def test_with_your_own_brokers_the_platform_runs_no_broker(monkeypatch, tmp_path) -> None:
    from include.runtime.cli import all_services
    from include.runtime.own_kafka import check_own_kafka, describe
    from include.runtime.procs import PlatformError

    assert "kafka" in [s.name for s in all_services(Settings())]
    monkeypatch.setenv("ECOM_KAFKA__BOOTSTRAP_SERVERS", "broker.example:9093")
    settings = with_env(
        monkeypatch,
        protocol="SSL",
        ssl_certfile=str(tmp_path / "missing.pem"),
        ssl_keyfile=str(tmp_path / "missing-key.pem"),
    )
    assert "kafka" not in [s.name for s in all_services(settings)]
    assert describe(settings) == (
        f"broker.example:9093 (SSL, client certificate {tmp_path / 'missing.pem'})"
    )
    with pytest.raises(PlatformError, match=r"ssl_certfile = .*missing\.pem'?: no such file"):
        check_own_kafka(settings)


def test_the_event_producer_has_the_platform_settings_in_librdkafkas_words(monkeypatch) -> None:
    """The same durability and batching as kafka-python's PRODUCER_DEFAULTS (and the Java
    tool's in the benchmark), the Java client's partitioner, the security of the settings;
    a caller's overrides win."""
    from include.kafka.client import confluent_producer_config

    settings = with_env(
        monkeypatch, protocol="SASL_SSL", username="producer", password="pw", ssl_cafile="/ca.pem"
    )
    monkeypatch.setattr("include.kafka.client.get_settings", lambda: settings)
    config = confluent_producer_config("b:9093", {"compression.type": "snappy"})
    assert config == {
        "acks": "all",
        "enable.idempotence": "true",
        "retries": "2147483647",
        "delivery.timeout.ms": "120000",
        "max.in.flight.requests.per.connection": "5",
        "linger.ms": "20",
        "batch.size": "262144",
        "compression.type": "snappy",
        "partitioner": "murmur2_random",
        "bootstrap.servers": "b:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "producer",
        "sasl.password": "pw",
        "ssl.ca.location": "/ca.pem",
    }


def test_librdkafka_takes_every_name_and_value_of_the_producer_config(monkeypatch) -> None:
    """librdkafka refuses an unknown property or a value out of range when the client is
    built (no broker needed: it connects in the background)."""
    import logging

    from confluent_kafka import KafkaException, Producer

    from include.kafka.client import confluent_producer_config

    monkeypatch.setattr("include.kafka.client.get_settings", lambda: Settings())
    quiet = {"logger": logging.getLogger("test.librdkafka"), "log_level": 0}
    Producer({**confluent_producer_config("127.0.0.1:9"), **quiet})
    # The tutorial format's codec.
    Producer({**confluent_producer_config("127.0.0.1:9", {"compression.type": "snappy"}), **quiet})
    with pytest.raises(KafkaException, match="linger_ms"):
        Producer({**confluent_producer_config("127.0.0.1:9"), "linger_ms": "20", **quiet})
