"""``[kafka]`` and ``[kafka.security]``: where the brokers are, the topics, and how clients
authenticate, with the rules a security combination must follow to work (each client's
options are built from these in :mod:`include.kafka.security`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from include.settings.base import Section

# The prefix of the environment variables that hold [kafka.security]'s secrets.
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


class KafkaSecurity(Section, section="kafka.security"):
    """How clients reach the brokers: PLAINTEXT locally; on your own Kafka, TLS alone
    (``SSL``, with a client certificate: mutual TLS) or SASL over TLS (``SASL_SSL``: SCRAM or
    PLAIN).  Passwords come only from the environment (ECOM_KAFKA__SECURITY__PASSWORD,
    ECOM_KAFKA__SECURITY__SSL_KEY_PASSWORD), never from a file in the repo.  Every client
    (tasks, Spark apps, Airflow's kafka_default connection) is built from these
    (include/kafka/security.py)."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"]
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
    username: str
    # Never in a file: only from the environment.
    password: SecretStr = SecretStr("")
    ssl_cafile: str
    # A client certificate (PEM) and its private key: mutual TLS.
    ssl_certfile: str
    ssl_keyfile: str
    # The client key's password, when the key file is encrypted; only from the environment.
    ssl_key_password: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _a_combination_that_can_work(self) -> KafkaSecurity:
        if problems := security_problems(self):
            # Not a ValueError: pydantic would print it with every value given, password too.
            raise KafkaSecurityError("[kafka.security]: " + "; ".join(problems))
        return self


class KafkaSettings(Section, section="kafka"):
    """``[kafka]``: the brokers to use (``bootstrap_servers``; empty: the local one on ``port``),
    the local broker's ports and heap, the topics, and their partitions, replication and
    retention (ms)."""

    bootstrap_servers: str
    security: KafkaSecurity = Field(default_factory=KafkaSecurity.shipped)
    port: int
    controller_port: int
    heap: str
    # Further JVM options for the local broker (include.runtime.kafka).
    broker_java_options: str
    input_topic: str
    dead_letter_topic: str
    # The idle rule's control records (include.streaming.idle_close), written by the streaming app.
    control_topic: str
    partitions: int = Field(ge=1)
    replication_factor: int = Field(ge=1)
    min_insync_replicas: int = Field(ge=1)
    output_topic_prefix: str
    output_partitions: int = Field(ge=1)
    retention_ms: int
    # How long one call of the streaming app's Kafka transaction may take before the producer
    # is made anew (spark_jobs.output_topics; a commit gets twice this).
    transaction_call_timeout_seconds: float = Field(gt=0)
