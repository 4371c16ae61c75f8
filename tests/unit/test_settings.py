"""One config file, overridable from the environment; paths all derive from the state dir."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from include.kafka.security import kafka_client_options, spark_kafka_options
from include.settings import Settings


def test_file_values_are_loaded():
    settings = Settings()
    assert settings.kafka.input_topic == "ecommerce-events"
    assert settings.analytics.revenue_window_seconds == 60


def test_environment_overrides_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOM_KAFKA__PORT", "19092")
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    assert settings.bootstrap_servers == "127.0.0.1:19092"
    assert settings.paths.checkpoint_path("q") == tmp_path / "checkpoints" / "q"
    assert settings.paths.table_path("t") == tmp_path / "tables" / "t"


def test_another_config_file_can_be_used(monkeypatch, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("[producer]\nrate = 7\n")
    monkeypatch.setenv("ECOM_CONFIG_FILE", str(other))
    assert Settings().producer.rate == 7
    assert Settings().kafka.port == 9092  # untouched keys keep their defaults


def test_kafka_security_reaches_kafka_python_and_spark_options(monkeypatch) -> None:
    from include.settings import Settings

    plain = Settings()
    assert kafka_client_options(plain) == {}
    assert spark_kafka_options(plain) == {"kafka.bootstrap.servers": plain.bootstrap_servers}
    monkeypatch.setenv("ECOM_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("ECOM_KAFKA__SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ECOM_KAFKA__SECURITY__USERNAME", "streaming")
    monkeypatch.setenv("ECOM_KAFKA__SECURITY__PASSWORD", "s3cret")
    monkeypatch.setenv("ECOM_KAFKA__SECURITY__SSL_CAFILE", "/certs/ca.pem")
    secured = Settings()
    assert secured.bootstrap_servers == "k1:9092,k2:9092"
    assert kafka_client_options(secured) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "streaming",
        "sasl_plain_password": "s3cret",
        "ssl_cafile": "/certs/ca.pem",
    }
    spark = spark_kafka_options(secured)
    assert spark["kafka.security.protocol"] == "SASL_SSL"
    assert 'username="streaming" password="s3cret";' in spark["kafka.sasl.jaas.config"]
    assert spark["kafka.ssl.truststore.location"] == "/certs/ca.pem"
    assert "s3cret" not in repr(secured)  # the password never shows in logs of the settings


def test_the_zone_of_zone_less_timestamps_must_be_a_known_one(monkeypatch):
    monkeypatch.setenv("ECOM_EVENTS__NAIVE_TIMEZONE", "Europe/Berlin")
    assert Settings().events.naive_timezone == "Europe/Berlin"
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        monkeypatch.setenv("ECOM_EVENTS__NAIVE_TIMEZONE", bad)
        with pytest.raises(ValueError, match="naive_timezone"):
            Settings()


@pytest.mark.parametrize(
    "variable",
    [
        "ECOM_SPARK__RESTART_SCHEDULE",
        "ECOM_BACKFILL__SCHEDULE",
        "ECOM_QUALITY__SCHEDULE",
        "ECOM_MAINTENANCE__SCHEDULE",
    ],
)
def test_a_schedule_that_is_no_cron_expression_stops_the_settings(monkeypatch, variable):
    monkeypatch.setenv(variable, "*/5 * * *")  # four fields
    with pytest.raises(ValueError, match=r"not a cron expression: '\*/5 \* \* \*'") as error:
        Settings()
    assert variable.removeprefix("ECOM_").lower().replace("__", ".") in str(error.value)
    monkeypatch.setenv(variable, "*/5 * * * *")
    assert Settings()  # a valid one passes


def test_only_the_restart_may_be_turned_off_with_an_empty_schedule(monkeypatch):
    monkeypatch.setenv("ECOM_SPARK__RESTART_SCHEDULE", "")
    assert Settings().spark.restart_schedule == ""
    monkeypatch.setenv("ECOM_QUALITY__SCHEDULE", "")
    with pytest.raises(ValueError, match="not a cron expression: ''"):
        Settings()


def test_further_spark_settings_come_last_and_win(monkeypatch) -> None:
    from spark_jobs.session import PER_BATCH_COST_CONF, session_conf

    defaults = session_conf(Settings())
    assert defaults["spark.sql.codegen.cache.maxEntries"] == "2000"
    monkeypatch.setenv(
        "ECOM_SPARK__CONF",
        '{"spark.sql.codegen.cache.maxEntries": "100", "spark.locality.wait": "0s"}',
    )
    mine = session_conf(Settings())
    assert mine["spark.sql.codegen.cache.maxEntries"] == "100"
    assert mine["spark.locality.wait"] == "0s"
    untouched = set(PER_BATCH_COST_CONF) - {"spark.sql.codegen.cache.maxEntries"}
    assert {k: mine[k] for k in untouched} == {k: defaults[k] for k in untouched}


def test_emit_at_once_by_default_runs_without_an_interval_and_polls_gently(monkeypatch) -> None:
    from spark_jobs.session import AT_ONCE_POLL, session_conf, trigger_options

    assert Settings().spark.emit == "at_once"
    assert trigger_options(Settings(), 10) == {"processingTime": "0 seconds"}
    assert session_conf(Settings())["spark.sql.streaming.pollingDelay"] == AT_ONCE_POLL
    monkeypatch.setenv("ECOM_SPARK__EMIT", "interval")
    assert trigger_options(Settings(), 10) == {"processingTime": "10 seconds"}
    assert "spark.sql.streaming.pollingDelay" not in session_conf(Settings())
    monkeypatch.setenv("ECOM_SPARK__EMIT", "sometimes")
    with pytest.raises(ValidationError, match="emit"):
        Settings()


def _sections(model: type, prefix: str = "") -> list[tuple[str, type]]:
    from include.settings.base import Section

    found = [(prefix, model)]
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, Section):
            found += _sections(kind, f"{prefix}.{name}" if prefix else name)
    return found


def test_every_value_is_written_once_in_the_shipped_file():
    """The models hold types and bounds; config/platform.toml holds every value.  The
    passwords (environment only) and the extra Spark settings (none by default) are the
    settings without a line in the file."""
    from include.settings.base import Section, shipped_values

    without_a_line = {
        "kafka.security.password",
        "kafka.security.ssl_key_password",
        "spark.conf",
        "alerts.smtp_password",
    }
    for section, model in _sections(Settings):
        table = shipped_values()
        for part in section.split(".") if section else ():
            table = table[part]
        for name, field in model.model_fields.items():
            key = f"{section}.{name}" if section else name
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, Section):
                continue
            if key in without_a_line:
                assert name not in table, f"{key} must not be in the shipped file"
                continue
            assert name in table, f"{key} has no value in config/platform.toml"
            assert field.is_required(), f"{key} repeats its value as a default in the model"


def test_the_kafka_transaction_call_timeout_is_read_and_must_be_positive(monkeypatch):
    assert Settings().kafka.transaction_call_timeout_seconds == 30
    monkeypatch.setenv("ECOM_KAFKA__TRANSACTION_CALL_TIMEOUT_SECONDS", "10")
    assert Settings().kafka.transaction_call_timeout_seconds == 10
    monkeypatch.setenv("ECOM_KAFKA__TRANSACTION_CALL_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValidationError, match="transaction_call_timeout_seconds"):
        Settings()
