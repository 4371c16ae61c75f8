"""One config file, overridable from the environment; paths all derive from the state dir."""

from __future__ import annotations

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
    assert settings.checkpoint_path("q") == tmp_path / "checkpoints" / "q"
    assert settings.table_path("t") == tmp_path / "tables" / "t"


def test_another_config_file_can_be_used(monkeypatch, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text("[producer]\nrate = 7\n")
    monkeypatch.setenv("ECOM_CONFIG_FILE", str(other))
    assert Settings().producer.rate == 7
    assert Settings().kafka.port == 9092  # untouched keys keep their defaults
