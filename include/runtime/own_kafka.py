"""Your own Kafka: when ``[kafka] bootstrap_servers`` is set, the platform starts no broker
and uses those, with ``[kafka.security]``.

`make up` checks before starting anything that the brokers answer with that security, so a
wrong address, certificate or password fails at once, saying what to fix, instead of in a
task's log minutes later.
"""

from __future__ import annotations

from include.runtime.procs import PlatformError
from include.settings import Settings


def uses_own_kafka(settings: Settings) -> bool:
    """True when ``[kafka] bootstrap_servers`` names brokers (no local broker then)."""
    return bool(settings.kafka.bootstrap_servers.strip())


def describe(settings: Settings) -> str:
    """The brokers and how the platform authenticates to them, in one line (no secrets)."""
    sec = settings.kafka.security
    how: str = sec.protocol
    if sec.protocol == "SASL_SSL":
        how += f", {sec.sasl_mechanism} as {sec.username!r}"
    if sec.ssl_certfile:
        how += f", client certificate {sec.ssl_certfile}"
    return f"{settings.bootstrap_servers} ({how})"


def check_own_kafka(settings: Settings, timeout_s: float = 15.0) -> int:
    """Connect to the configured brokers as every platform client will; returns how many
    topics they have.  Raises PlatformError naming what to check when they do not answer."""
    from include.kafka.client import admin
    from include.kafka.security import missing_files, spark_options

    sec = settings.kafka.security
    if problems := missing_files(sec):
        raise PlatformError(
            "; ".join(problems) + ". Give the path of a readable PEM file (or clear the key)."
        )
    try:
        spark_options(sec)  # the Spark apps read the client key too
    except ValueError as exc:
        raise PlatformError(str(exc)) from None
    timeout_ms = int(timeout_s * 1000)
    try:
        client = admin(
            settings.bootstrap_servers,
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
        try:
            return len(client.list_topics())
        finally:
            client.close()
    except Exception as exc:  # kafka-python: NoBrokersAvailable, SSL and SASL errors
        raise PlatformError(
            f"your Kafka at {describe(settings)} did not answer within {timeout_s:.0f}s "
            f"({type(exc).__name__}: {exc}). Check that [kafka] bootstrap_servers is right and "
            "reachable from this host, and [kafka.security]: the protocol the listener "
            "speaks, ssl_cafile (the CA of the brokers' certificates), the user and "
            "ECOM_KAFKA__SECURITY__PASSWORD, or ssl_certfile/ssl_keyfile for mutual TLS. "
            "The README's 'Use your own Kafka' shows each mode."
        ) from None
