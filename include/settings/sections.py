"""The ``[section]`` models of config/platform.toml but Kafka's (:mod:`include.settings.kafka`):
PostgreSQL, Airflow, Spark and its History Server, the producer, the events, the analytics,
the supervisor, the backfill, quality, alerts and maintenance."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from include.settings.base import Cron, CronOrOff, EventFormat, Section


class PostgresSettings(Section, section="postgres"):
    """``[postgres]``: the port of Airflow's metadata database, and Airflow's role and database."""

    port: int
    user: str
    database: str


class RegistrySettings(Section, section="registry"):
    """``[registry]``: the schema registry (your own ``url``, or the local Apicurio Registry's
    ports, version and heap), the compatibility rule of the event schema, and the registry's
    role and database in the platform's PostgreSQL."""

    url: str
    port: int = Field(ge=1, le=65535)
    management_port: int = Field(ge=1, le=65535)
    version: str
    heap: str
    compatibility: Literal[
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
        "NONE",
    ]
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
    # JVM options for every Spark driver; the class-data archive's is added on top
    # (include.runtime.spark_launch.driver_java_options).
    driver_java_options: str
    # Any further Spark setting for the streaming application, applied after the
    # platform's own (ECOM_SPARK__CONF='{"spark.sql.codegen.cache.maxEntries": "100"}').
    conf: dict[str, str] = {}


class SparkHistorySettings(Section, section="spark_history"):
    """``[spark_history]``: the Spark History Server's port and heap, and how the drivers'
    event logs are bounded: rolled at ``rolling_file_mb``, compacted beyond
    ``keep_rolled_files``, deleted after ``keep_days``."""

    port: int = Field(ge=1, le=65535)
    heap: str
    keep_days: float = Field(gt=0)
    # Spark refuses a rolling size under 10 MiB.
    rolling_file_mb: int = Field(ge=10)
    keep_rolled_files: int = Field(ge=1)


class ProducerSettings(Section, section="producer"):
    """``[producer]``: what the producer writes and how fast: event format, rate (events per
    second), duration (0: until stopped), seed, users and products."""

    # "platform": visits of generated users (include.generators.EventGenerator); "tutorial":
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
    # The loud warning of `make status` and the health page (include.streaming.dead_letter_share).
    dead_letter_alarm_percent: float = Field(ge=0, le=100)
    dead_letter_alarm_minutes: int = Field(gt=0)
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


class MetricsSettings(Section, section="metrics"):
    """``[metrics]``: the metrics endpoint (``/ecom/metrics``) and its bearer token."""

    # The file holding the endpoint's bearer token. Empty: ``<state>/run/metrics_token``,
    # generated on first use; docker compose points it at its secret
    # (/run/secrets/metrics_token), which the user generates and the platform only reads.
    token_file: str
