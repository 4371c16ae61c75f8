"""``[kafka.security]`` in each Kafka client's own words.

The settings are the one place that says where the brokers are and how to authenticate;
this module turns them into the options of every client the platform has:

* kafka-python (the DAG tasks' admin clients and consumers, tools and tests, through
  ``include.kafka.client``),
* Spark's Kafka source and sink (``kafka.*`` options of the streaming and backfill apps),
* confluent-kafka (librdkafka): the event producer (``include.kafka.client.confluent_producer``),
  the streaming app's own Kafka writes, and the apache-kafka provider, whose ``kafka_default``
  connection ``make up`` derives from the settings (``include.runtime.airflow``).

Modes: PLAINTEXT; SSL (TLS, with ``ssl_certfile``/``ssl_keyfile``: mutual TLS); SASL_SSL
with SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (the mechanism of most managed Kafka services).
"""

from __future__ import annotations

from pathlib import Path

from include.settings import Settings
from include.settings.kafka import ENV, KafkaSecurity

LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def missing_files(sec: KafkaSecurity) -> list[str]:
    """The certificate and key files the settings name that cannot be read, as messages."""
    missing = []
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(sec, key)
        if path and not Path(path).is_file():
            missing.append(f"[kafka.security] {key} = {path!r}: no such file")
    return missing


# The values a client reading files needs, under each client's own names.
KAFKA_PYTHON_NAMES = {
    "protocol": "security_protocol",
    "mechanism": "sasl_mechanism",
    "username": "sasl_plain_username",
    "password": "sasl_plain_password",
    "cafile": "ssl_cafile",
    "certfile": "ssl_certfile",
    "keyfile": "ssl_keyfile",
    "key_password": "ssl_password",
}
CONFLUENT_NAMES = {
    "protocol": "security.protocol",
    "mechanism": "sasl.mechanism",
    "username": "sasl.username",
    "password": "sasl.password",
    "cafile": "ssl.ca.location",
    "certfile": "ssl.certificate.location",
    "keyfile": "ssl.key.location",
    "key_password": "ssl.key.password",
}


def _values(sec: KafkaSecurity) -> dict[str, str]:
    """The security values that apply to the mode (none for PLAINTEXT), by neutral name."""
    if sec.protocol == "PLAINTEXT":
        return {}
    values: dict[str, str] = {"protocol": sec.protocol}
    if sec.protocol == "SASL_SSL":
        values |= {
            "mechanism": sec.sasl_mechanism,
            "username": sec.username,
            "password": sec.password.get_secret_value(),
        }
    if sec.ssl_cafile:
        values["cafile"] = sec.ssl_cafile
    if sec.ssl_certfile:
        values |= {"certfile": sec.ssl_certfile, "keyfile": sec.ssl_keyfile}
        if key_password := sec.ssl_key_password.get_secret_value():
            values["key_password"] = key_password
    return values


def kafka_python_options(sec: KafkaSecurity) -> dict[str, str]:
    """kafka-python options (none for PLAINTEXT)."""
    return {KAFKA_PYTHON_NAMES[name]: value for name, value in _values(sec).items()}


def spark_options(sec: KafkaSecurity) -> dict[str, str]:
    """``kafka.*`` options of Spark's Kafka source and sink, besides the brokers."""
    if sec.protocol == "PLAINTEXT":
        return {}
    options: dict[str, str] = {"kafka.security.protocol": sec.protocol}
    if sec.protocol == "SASL_SSL":
        # JAAS quoting: a password with a quote or backslash must be escaped.
        password = sec.password.get_secret_value().replace("\\", "\\\\").replace('"', '\\"')
        options |= {
            "kafka.sasl.mechanism": sec.sasl_mechanism,
            "kafka.sasl.jaas.config": f"{LOGIN_MODULES[sec.sasl_mechanism]} required "
            f'username="{sec.username}" password="{password}";',
        }
    if sec.ssl_cafile:
        options |= {
            "kafka.ssl.truststore.type": "PEM",
            "kafka.ssl.truststore.location": sec.ssl_cafile,
        }
    if sec.ssl_certfile:
        # Kafka's PEM keystore takes a key and chain in one file, or both as text; the
        # text form keeps the user's two files as they are (and works on any executor).
        options |= {
            "kafka.ssl.keystore.type": "PEM",
            "kafka.ssl.keystore.certificate.chain": Path(sec.ssl_certfile).read_text(),
            "kafka.ssl.keystore.key": pkcs8_key(sec),
        }
    return options


def pkcs8_key(sec: KafkaSecurity) -> str:
    """The client key as the unencrypted PKCS#8 PEM the Java client reads (a key file may be
    PKCS#1, SEC1 or encrypted, which Java's PEM keystore does not read)."""
    from cryptography.hazmat.primitives import serialization

    password = sec.ssl_key_password.get_secret_value().encode() or None
    try:
        key = serialization.load_pem_private_key(
            Path(sec.ssl_keyfile).read_bytes(), password=password
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"cannot read the client key {sec.ssl_keyfile} ([kafka.security] ssl_keyfile): "
            f"{exc}; an encrypted key needs {ENV}SSL_KEY_PASSWORD"
        ) from None
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def confluent_options(sec: KafkaSecurity, bootstrap_servers: str) -> dict[str, str]:
    """confluent-kafka (librdkafka) configuration: the event producer's security and the
    extra of the apache-kafka provider's ``kafka_default`` connection."""
    values = {CONFLUENT_NAMES[name]: value for name, value in _values(sec).items()}
    return {"bootstrap.servers": bootstrap_servers, **values}


def kafka_client_options(settings: Settings) -> dict[str, str]:
    """kafka-python options for the configured security (none for PLAINTEXT)."""
    return kafka_python_options(settings.kafka.security)


def confluent_kafka_options(settings: Settings) -> dict[str, str]:
    """confluent-kafka (librdkafka) options: the brokers and the security."""
    return confluent_options(settings.kafka.security, settings.bootstrap_servers)


def spark_kafka_options(settings: Settings) -> dict[str, str]:
    """Options of Spark's Kafka source and sink: the brokers and the security."""
    return {
        "kafka.bootstrap.servers": settings.bootstrap_servers,
        **spark_options(settings.kafka.security),
    }
