"""The layout of the state dir: the one place that knows where the platform keeps its logs,
data, checkpoints and bookkeeping (``settings.paths``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from include.analytics import PIPELINE


@dataclass(frozen=True)
class StateLayout:
    """Everything under the state dir `state` (absolute), and the metrics token's file when
    ``[metrics] token_file`` puts it elsewhere (`token_file`, absolute)."""

    state: Path
    token_file: Path | None = None

    @property
    def run_dir(self) -> Path:
        """PID files and generated secrets."""
        return self.state / "run"

    @property
    def log_dir(self) -> Path:
        """The services' logs (Airflow's task logs in ``airflow/`` below)."""
        return self.state / "logs"

    @property
    def metrics_token_file(self) -> Path:
        """The bearer token Prometheus sends to the metrics endpoint: ``[metrics] token_file``
        (a file the user made, e.g. a docker compose secret), else one generated here (mode
        0600)."""
        return self.token_file or self.run_dir / "metrics_token"

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
    def spark_events_dir(self) -> Path:
        """Every Spark driver's event log, which the Spark History Server reads."""
        return self.state / "spark-events"

    @property
    def spark_drivers_file(self) -> Path:
        """The last Spark drivers started: application id, script, pid (the History
        Server's links to them)."""
        return self.metrics_dir / "spark_drivers.jsonl"

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
        return self.checkpoint_path(PIPELINE)
