"""Typed platform settings: one loader, one file (``config/platform.toml``), env overrides.

Every other module asks this one for ports, paths, topic names and analytics parameters.
The models below give each setting its type and bounds; its value is written once, in the
shipped ``config/platform.toml``.  Environment variables win over the file
(``ECOM_KAFKA__PORT=19092`` overrides ``[kafka] port``), and ``ECOM_CONFIG_FILE`` swaps the
file for another one, whose missing keys keep the shipped file's values.
"""

from __future__ import annotations

import os
import tomllib
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE_ENV = "ECOM_CONFIG_FILE"
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "platform.toml"

# What the producer writes: "platform" events (visits, include.events.EventGenerator) or
# "tutorial" ones (the Kafka + Spark tutorial's own, include.events.TutorialEventGenerator).
EventFormat = Literal["platform", "tutorial"]
EVENT_FORMATS: tuple[str, ...] = get_args(EventFormat)
# Everything the platform writes under the state dir (tables, checkpoints, logs, metrics)
# is for its own user and group: directories 0750, files 0640.
STATE_UMASK = 0o027
# The Airflow pool (one slot) the streaming task runs in; `make up` creates it.
STREAMING_POOL = "streaming"


@cache
def shipped_values() -> dict[str, Any]:
    """The shipped config/platform.toml: the value of every setting unless overridden."""
    with open(DEFAULT_CONFIG_FILE, "rb") as handle:
        return tomllib.load(handle)


def _shipped_section(section: str) -> dict[str, Any]:
    values: Any = shipped_values()
    for part in section.split(".") if section else ():
        values = values.get(part, {})
    # Sub-tables ([kafka.security] under [kafka]) are their own sections.
    return {k: v for k, v in values.items() if not isinstance(v, dict)}


def _cron(value: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(
            f"not a cron expression: {value!r}; five fields, minute hour day month weekday "
            "(UTC), e.g. '0 * * * *' for hourly"
        )
    return value


# A DAG's schedule: checked here, so a typo stops `make up` with this message instead of
# leaving the DAG out of Airflow with an import error.
Cron = Annotated[str, AfterValidator(_cron)]
# The same, or "" for never.
CronOrOff = Annotated[str, AfterValidator(lambda value: value and _cron(value))]


class Section(BaseModel):
    """A table of config/platform.toml; a key the caller leaves out takes the shipped value.

    So ``AnalyticsSettings(watermark_seconds=120)`` is the shipped analytics with one change,
    and a config file of one's own needs only the keys it changes.
    """

    section: ClassVar[str]

    def __init_subclass__(cls, section: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.section = section

    @model_validator(mode="before")
    @classmethod
    def _shipped_values_first(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**_shipped_section(cls.section), **data}
        return data


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
        from include.kafka.security import KafkaSecurityError, security_problems

        if problems := security_problems(self):
            # Not a ValueError: pydantic would print it with every value given, password too.
            raise KafkaSecurityError("[kafka.security]: " + "; ".join(problems))
        return self


class KafkaSettings(Section, section="kafka"):
    """``[kafka]``: the brokers to use (``bootstrap_servers``; empty: the local one on ``port``),
    the local broker's ports and heap, the topics, and their partitions, replication and
    retention (ms)."""

    bootstrap_servers: str
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    port: int
    controller_port: int
    heap: str
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


class PostgresSettings(Section, section="postgres"):
    """``[postgres]``: the port of Airflow's metadata database, and Airflow's role and database."""

    port: int
    user: str
    database: str


class AirflowSettings(Section, section="airflow"):
    """``[airflow]``: the API server's port, the admin user, and how many tasks run at once."""

    port: int
    admin_user: str
    parallelism: int


class SparkSettings(Section, section="spark"):
    """``[spark]``: the master, the driver's memory, and how the streaming queries run: shuffle
    partitions, trigger, batch size, checkpoint retention, state store, restarts."""

    master: str
    driver_memory: str
    shuffle_partitions: int = Field(ge=1)
    trigger_seconds: int = Field(ge=1)
    # When the rows a batch made final leave (spark_jobs/session.py: trigger_options):
    # "at_once", in a batch that runs right after it; "interval", with the next batch,
    # trigger_seconds later.  With "at_once" a batch with input runs once
    # min_offsets_per_trigger records wait or trigger_seconds after the last one.
    emit: Literal["interval", "at_once"]
    min_offsets_per_trigger: int = Field(ge=1)
    max_offsets_per_trigger: int = Field(ge=1)
    min_batches_to_retain: int = Field(ge=2)
    state_store: Literal["rocksdb", "hdfs"]
    # Scheduled graceful restart of the streaming driver (cron, UTC); "" turns it off.
    restart_schedule: CronOrOff
    # The streaming driver's Spark UI (and Spark's own Prometheus metrics) on bind_host.
    ui_port: int = Field(ge=1, le=65535)
    # Any further Spark setting for the streaming application, applied after the
    # platform's own (ECOM_SPARK__CONF='{"spark.sql.codegen.cache.maxEntries": "100"}').
    conf: dict[str, str] = {}


class ProducerSettings(Section, section="producer"):
    """``[producer]``: what the producer writes and how fast: event format, rate (events per
    second), duration (0: until stopped), seed, users and products."""

    # "platform": visits of generated users (include.events.EventGenerator); "tutorial":
    # the Kafka + Spark tutorial's own events, zone-less timestamps and snappy batches.
    event_format: EventFormat
    rate: float = Field(gt=0)
    duration_seconds: float = Field(ge=0)
    seed: int
    users: int = Field(ge=1)
    products: int = Field(ge=1)


class EventSettings(Section, section="events"):
    """``[events]``: the bounds of a valid event (size, event time against record time) and how
    its timestamp and numbers are read."""

    max_event_bytes: int = Field(gt=0)
    max_event_lag_seconds: int = Field(gt=0)
    max_event_lead_seconds: int = Field(ge=0)
    # The zone a timestamp without an offset is read in (an IANA name such as "UTC" or
    # "Europe/Berlin"): the tutorial's producer writes datetime.now().isoformat(), the
    # producer machine's local time with no zone.
    naive_timezone: str
    # A number sent as text ("19.99") is wrong_type:<field> unless this is true.
    accept_numeric_strings: bool

    @field_validator("naive_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'UTC' or "
                "'Europe/Berlin' ([events] naive_timezone)"
            ) from None
        return value


class AnalyticsSettings(Section, section="analytics"):
    """``[analytics]``: the watermark, the windows and their slides (seconds), the high-value
    threshold, the session gap and the attribution range."""

    watermark_seconds: int = Field(ge=0)
    revenue_window_seconds: int = Field(gt=0)
    revenue_slide_seconds: int = Field(gt=0)
    high_value_window_seconds: int = Field(gt=0)
    high_value_slide_seconds: int = Field(gt=0)
    # Users spending more than this in a window are "high value" (same unit as revenue).
    high_value_threshold: float = Field(ge=0)
    funnel_window_seconds: int = Field(gt=0)
    funnel_slide_seconds: int = Field(gt=0)
    # A session closes after this long without an event of its user.
    session_gap_seconds: int = Field(gt=0)
    # A purchase counts for a page view of the same product up to this long after it.
    attribution_seconds: int = Field(gt=0)
    # The idle rule (include.streaming.idle_close): after this long without a new event, event time
    # moves on with the wall clock, and a control record carries it every tick.
    idle_close_seconds: float = Field(gt=0)
    idle_tick_seconds: float = Field(gt=0)


class SupervisorSettings(Section, section="supervisor"):
    """``[supervisor]``: how often the supervisor looks, when it calls a query lagging, stalled
    or frozen, and how long a graceful stop may take."""

    # How often the supervisor DAG looks (its schedule): a dead driver waits up to this long.
    interval_seconds: int = Field(ge=10)
    # More records than this between the last commit and the topic's end: "lagging".
    lag_warning_records: int = Field(ge=0)
    # No commit for this long while there is input: "stalled" (stop, then restart).
    stall_seconds: float = Field(gt=0)
    # A driver whose lease heartbeat is older than this is frozen: "stalled".
    frozen_after_seconds: float = Field(gt=0)
    # How long a graceful stop may take before the driver is killed.
    stop_timeout_seconds: float = Field(gt=0)


class BackfillSettings(Section, section="backfill"):
    """``[backfill]``: how far around an interval the backfill reads, the DAG's intervals and
    whether its scheduled runs do work."""

    # Read this much before and after an interval (by Kafka record time): the longest
    # window, the session gap / attribution range, plus events that reached Kafka late.
    margin_seconds: int = Field(ge=0)
    # The DAG's data intervals (cron, UTC); a backfill range is cut into these.
    schedule: Cron
    # Whether the DAG's scheduled runs recompute their interval or skip at once.
    on_schedule: bool


class QualitySettings(Section, section="quality"):
    """``[quality]``: the checks' cron, their thresholds (rows, freshness, dead letters) and the
    reconciliation's read margin."""

    # The data_quality DAG also runs on this cron (UTC), besides on every table update.
    schedule: Cron
    # A table with fewer committed rows than this is not checked yet (skipped, not failed).
    min_rows: int = Field(ge=0)
    # Freshness: a table's newest row may trail the input's newest record by its own
    # horizon (window length or session gap, plus the watermark) plus this many minutes.
    freshness_minutes: float = Field(ge=0)
    # Dead letters above this share of the input records, over the window below: a warning.
    max_dead_letter_percent: float = Field(ge=0, le=100)
    dead_letter_window_minutes: float = Field(gt=0)
    # Reconciliation reads the input topic from this long (record time) before the first
    # window it checks: room for events that reached Kafka before their event time.
    reconcile_margin_seconds: int = Field(ge=0)


class AlertSettings(Section, section="alerts"):
    """``[alerts]``: where alerts go (a webhook, e-mail through SMTP; each off while its
    target is empty) and how often the same alert may repeat."""

    # A JSON POST of {"text": ..., "link": ...} (Slack, Teams, any receiver); "" = off.
    # A secret (the URL is the credential): give it in the environment.
    webhook_url: SecretStr
    webhook_timeout_seconds: float = Field(gt=0)
    # E-mail through the SMTP provider; "" = off.
    smtp_host: str
    smtp_port: int = Field(ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"]
    smtp_user: str
    # Never in a file: only from the environment (ECOM_ALERTS__SMTP_PASSWORD).
    smtp_password: SecretStr = SecretStr("")
    email_from: str
    email_to: str
    # The same supervisor alert (queries and state) at most once per this many seconds.
    repeat_seconds: float = Field(ge=0)
    # Dead letters: at most one alert per this many seconds.
    dead_letter_interval_seconds: float = Field(ge=0)

    @model_validator(mode="after")
    def _email_needs_recipients(self) -> AlertSettings:
        if self.smtp_host and not self.recipients:
            raise ValueError(
                "[alerts] smtp_host is set but email_to is empty: give the addresses that "
                "get alert e-mails (comma-separated), or empty smtp_host to turn e-mail off"
            )
        return self

    @property
    def recipients(self) -> list[str]:
        """``email_to`` as a list of addresses."""
        return [a.strip() for a in self.email_to.split(",") if a.strip()]


class MaintenanceSettings(Section, section="maintenance"):
    """``[maintenance]``: the table_maintenance DAG's cron and every retention bound of a long
    run (Delta files and log, the JSON-lines files, reports, service and Airflow logs)."""

    # The table_maintenance DAG runs on this cron (UTC).
    schedule: Cron
    # Compaction rewrites a table's small files into files of about this size.
    target_file_mb: int = Field(gt=0)
    # Data files a compaction replaced are deleted once older than this: a reader of an
    # older version (a quality run, a pandas user) needs them until it is done.
    vacuum_retention_hours: int = Field(ge=0)
    # Delta log entries before the newest log checkpoint older than this are deleted.
    log_retention_hours: float = Field(ge=0)
    # progress.jsonl and quality/history.jsonl are rotated beyond this size; this many
    # rotated files are kept (progress.jsonl.1 the newest).
    jsonl_max_bytes: int = Field(ge=1024)
    jsonl_keep_files: int = Field(ge=1)
    # A service log under state/logs beyond this size is moved to <name>.log.1 (one kept).
    service_log_max_bytes: int = Field(ge=1024)
    # Backfill reports, Airflow task logs and Airflow's metadata rows older than this go.
    keep_days: float = Field(gt=0)


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
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    backfill: BackfillSettings = Field(default_factory=BackfillSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)

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

    # ---- paths: the one place that knows the layout of the state dir ----
    @cached_property
    def state(self) -> Path:
        """The state dir, absolute (a relative ``state_dir`` is under the project root)."""
        path = self.state_dir if self.state_dir.is_absolute() else PROJECT_ROOT / self.state_dir
        return path.resolve()

    @property
    def run_dir(self) -> Path:
        """PID files and generated secrets."""
        return self.state / "run"

    @property
    def log_dir(self) -> Path:
        """The services' logs (Airflow's task logs in ``airflow/`` below)."""
        return self.state / "logs"

    @property
    def jar_dir(self) -> Path:
        """The jar cache, absolute (a relative ``jar_cache`` is under the project root)."""
        path = self.jar_cache if self.jar_cache.is_absolute() else PROJECT_ROOT / self.jar_cache
        return path.resolve()

    @property
    def tool_dir(self) -> Path:
        """The tool cache, absolute (a relative ``tool_cache`` is under the project root)."""
        path = self.tool_cache if self.tool_cache.is_absolute() else PROJECT_ROOT / self.tool_cache
        return path.resolve()

    @property
    def metrics_token_file(self) -> Path:
        """The bearer token Prometheus sends to the metrics endpoint (generated, mode 0600)."""
        return self.run_dir / "metrics_token"

    @property
    def kafka_data_dir(self) -> Path:
        """Kafka's storage and configuration (a cluster node's in a folder of its own below)."""
        return self.state / "kafka"

    @property
    def postgres_data_dir(self) -> Path:
        """PostgreSQL's data dir and socket."""
        return self.state / "postgres"

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME."""
        return self.state / "airflow"

    @property
    def checkpoint_root(self) -> Path:
        """The streaming queries' checkpoints, one folder per query."""
        return self.state / "checkpoints"

    @property
    def table_root(self) -> Path:
        """The Delta tables: one per query, the backfill's under ``backfill/``."""
        return self.state / "tables"

    def backfill_table_path(self, analytic: str) -> Path:
        """Where the backfill writes an analytic's recomputed rows (beside the stream's)."""
        return self.table_root / "backfill" / analytic

    @property
    def metrics_dir(self) -> Path:
        """The streaming progress records and the supervisor's and backfill's bookkeeping."""
        return self.state / "metrics"

    @property
    def quality_dir(self) -> Path:
        """The quality runs' reports, history and GX context."""
        return self.state / "quality"

    def table_path(self, name: str) -> Path:
        """The sink table `name` (a query writes the table of its name)."""
        return self.table_root / name

    def checkpoint_path(self, query: str) -> Path:
        """The checkpoint of streaming query `query`."""
        return self.checkpoint_root / query

    @property
    def pipeline_checkpoint(self) -> Path:
        """The checkpoint of the one streaming query that writes every output."""
        from include.analytics import PIPELINE

        return self.checkpoint_path(PIPELINE)

    def output_topic(self, analytic: str) -> str:
        """The Kafka topic an analytic's rows are published to."""
        return f"{self.kafka.output_topic_prefix}{analytic}"

    @property
    def bootstrap_servers(self) -> str:
        """``[kafka] bootstrap_servers``, or the local broker when it is empty."""
        return self.kafka.bootstrap_servers or f"{self.bind_host}:{self.kafka.port}"

    def kafka_client_options(self) -> dict[str, str]:
        """kafka-python options for the configured security (none for PLAINTEXT)."""
        from include.kafka.security import kafka_python_options

        return kafka_python_options(self.kafka.security)

    def confluent_kafka_options(self) -> dict[str, str]:
        """confluent-kafka (librdkafka) options: the brokers and the security."""
        from include.kafka.security import confluent_options

        return confluent_options(self.kafka.security, self.bootstrap_servers)

    def spark_kafka_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source and sink: the brokers and the security."""
        from include.kafka.security import spark_options

        return {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            **spark_options(self.kafka.security),
        }


def get_settings() -> Settings:
    """Fresh settings each call: tests and CLIs change the environment between calls."""
    return Settings()
