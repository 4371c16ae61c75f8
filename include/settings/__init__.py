"""Typed platform settings: one loader, one file (``config/platform.toml``), env overrides.

Every other module asks this one for ports, paths, topic names and analytics parameters.
The models below give each setting its type and bounds; its value is written once, in the
shipped ``config/platform.toml``.  Environment variables win over the file
(``ECOM_KAFKA__PORT=19092`` overrides ``[kafka] port``), and ``ECOM_CONFIG_FILE`` swaps the
file for another one, whose missing keys keep the shipped file's values.

The models live in this package's modules: :mod:`include.settings.base` (the shipped file,
:class:`~include.settings.base.Section`), :mod:`include.settings.kafka` and
:mod:`include.settings.sections`; the state dir's layout is
:class:`include.settings.layout.StateLayout` (``settings.paths``); each Kafka client's options
are built in :mod:`include.kafka.security`.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from include.settings.base import CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, PROJECT_ROOT, Section
from include.settings.kafka import KafkaSettings
from include.settings.layout import StateLayout
from include.settings.sections import (
    AirflowSettings,
    AlertSettings,
    AnalyticsSettings,
    BackfillSettings,
    EventSettings,
    MaintenanceSettings,
    MetricsSettings,
    PostgresSettings,
    ProducerSettings,
    QualitySettings,
    RegistrySettings,
    SparkHistorySettings,
    SparkSettings,
    SupervisorSettings,
)


class Settings(Section, BaseSettings):
    """The platform's settings: the top-level keys and one model per section, and the layout of
    the state dir.  Strongest source first: arguments, ``ECOM_*`` variables, the config file."""

    model_config = SettingsConfigDict(env_prefix="ECOM_", env_nested_delimiter="__", extra="ignore")

    state_dir: Path
    # Downloaded jars (Kafka broker, Spark connectors); shared by every state dir.
    jar_cache: Path
    # Other downloaded tools (Debian's Prometheus for the metrics test); shared too.
    tool_cache: Path
    bind_host: str
    kafka: KafkaSettings = Field(default_factory=KafkaSettings.shipped)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings.shipped)
    registry: RegistrySettings = Field(default_factory=RegistrySettings.shipped)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings.shipped)
    spark: SparkSettings = Field(default_factory=SparkSettings.shipped)
    spark_history: SparkHistorySettings = Field(default_factory=SparkHistorySettings.shipped)
    producer: ProducerSettings = Field(default_factory=ProducerSettings.shipped)
    events: EventSettings = Field(default_factory=EventSettings.shipped)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings.shipped)
    quality: QualitySettings = Field(default_factory=QualitySettings.shipped)
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings.shipped)
    backfill: BackfillSettings = Field(default_factory=BackfillSettings.shipped)
    alerts: AlertSettings = Field(default_factory=AlertSettings.shipped)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings.shipped)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings.shipped)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the config file (``ECOM_CONFIG_FILE`` or the
        shipped one); no dotenv or secrets directory."""
        config_file = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file),
        )

    # ---- where things are: the state dir and its layout, the caches, the brokers ----
    @cached_property
    def state(self) -> Path:
        """The state dir, absolute (a relative ``state_dir`` is under the project root)."""
        return _under_project(self.state_dir)

    @cached_property
    def paths(self) -> StateLayout:
        """The layout of the state dir: logs, tables, checkpoints, metrics, ..."""
        token_file = self.metrics.token_file
        return StateLayout(self.state, _under_project(Path(token_file)) if token_file else None)

    @property
    def jar_dir(self) -> Path:
        """The jar cache, absolute (a relative ``jar_cache`` is under the project root)."""
        return _under_project(self.jar_cache)

    @property
    def tool_dir(self) -> Path:
        """The tool cache, absolute (a relative ``tool_cache`` is under the project root)."""
        return _under_project(self.tool_cache)

    def output_topic(self, analytic: str) -> str:
        """The Kafka topic an analytic's rows are published to."""
        return f"{self.kafka.output_topic_prefix}{analytic}"

    @property
    def bootstrap_servers(self) -> str:
        """``[kafka] bootstrap_servers``, or the local broker when it is empty."""
        return self.kafka.bootstrap_servers or f"{self.bind_host}:{self.kafka.port}"

    @property
    def registry_url(self) -> str:
        """The schema registry's Confluent-compatible API root: ``[registry] url``, or the
        local registry's when it is empty."""
        return (
            self.registry.url.rstrip("/")
            or f"http://{self.bind_host}:{self.registry.port}/apis/ccompat/v7"
        )


def _under_project(path: Path) -> Path:
    """`path` made absolute: a relative one is under the project root."""
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()


def get_settings() -> Settings:
    """Fresh settings each call: tests and CLIs change the environment between calls."""
    return Settings()
