"""``[kafka.security]`` in each Kafka client's own words.

The settings are the one place that says where the brokers are and how to authenticate;
this module turns them into the options of every client the platform has:

* kafka-python (the DAG tasks, tools and tests, through ``include.kafka.client``),
* Spark's Kafka source and sink (``kafka.*`` options of the streaming and backfill apps),
* confluent-kafka, the client of the apache-kafka provider, whose ``kafka_default``
  connection ``make up`` derives from the settings (``include.runtime.airflow``).

Modes: PLAINTEXT; SSL (TLS, with ``ssl_certfile``/``ssl_keyfile``: mutual TLS); SASL_SSL
with SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (the mechanism of most managed Kafka services).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.settings import KafkaSecurity

LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
ENV = "ECOM_KAFKA__SECURITY__"


class KafkaSecurityError(Exception):
    """A combination of ``[kafka.security]`` settings that cannot work; says what to change."""


def security_problems(sec: KafkaSecurity) -> list[str]:
    """What is wrong with a combination of security settings, each said as what to change
    (empty: it can work)."""
    problems = []
    password = sec.password.get_secret_value()
    client_cert = bool(sec.ssl_certfile or sec.ssl_keyfile)
    if sec.protocol == "PLAINTEXT":
        set_keys = [
            key
            for key, value in (
                ("username", sec.username),
                ("password", password),
                ("ssl_cafile", sec.ssl_cafile),
                ("ssl_certfile", sec.ssl_certfile),
                ("ssl_keyfile", sec.ssl_keyfile),
            )
            if value
        ]
        if set_keys:
            problems.append(
                f"{', '.join(set_keys)} set but protocol is PLAINTEXT, which sends nothing of "
                "them: set protocol = 'SSL' (TLS, client certificate) or 'SASL_SSL' (user and "
                "password), or clear them"
            )
    if sec.protocol == "SSL" and (sec.username or password):
        problems.append(
            "username/password are for SASL, but protocol is SSL (a client certificate "
            "authenticates): set protocol = 'SASL_SSL', or clear username and "
            f"{ENV}PASSWORD"
        )
    if sec.protocol == "SASL_SSL":
        if not sec.username:
            problems.append(f"protocol SASL_SSL needs username (or {ENV}USERNAME)")
        if not password:
            problems.append(
                f"protocol SASL_SSL needs the password in the environment: {ENV}PASSWORD"
            )
    if client_cert and not (sec.ssl_certfile and sec.ssl_keyfile):
        missing = "ssl_keyfile" if sec.ssl_certfile else "ssl_certfile"
        problems.append(
            f"mutual TLS needs both ssl_certfile and ssl_keyfile: set {missing} too, or clear "
            "the other"
        )
    if sec.ssl_key_password.get_secret_value() and not sec.ssl_keyfile:
        problems.append(f"{ENV}SSL_KEY_PASSWORD is set but there is no ssl_keyfile")
    return problems


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
    values = {"protocol": sec.protocol}
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
    options = {"kafka.security.protocol": sec.protocol}
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
    """confluent-kafka (librdkafka) configuration: the extra of the apache-kafka provider's
    ``kafka_default`` connection."""
    values = {CONFLUENT_NAMES[name]: value for name, value in _values(sec).items()}
    return {"bootstrap.servers": bootstrap_servers, **values}
