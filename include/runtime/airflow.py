"""Airflow's components (API server, scheduler, DAG processor, triggerer) as local services.

`airflow_environment` is the one source of Airflow's configuration: executor, metadata
database, secrets, API and the connections the DAGs use; every component and every
`airflow` CLI call runs with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from include.alerts.notify import alert_connections
from include.kafka.security import confluent_options
from include.runtime.postgres import Postgres
from include.runtime.procs import PlatformError
from include.runtime.secrets import platform_secrets
from include.runtime.service import Service
from include.runtime.spark_launch import spark_environment
from include.runtime.tools import venv_bin
from include.settings import Settings
from include.settings.base import PROJECT_ROOT

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Everything Airflow needs, from platform settings; connections come from here too."""
    sec = platform_secrets(settings)
    home = settings.paths.airflow_home
    api = f"http://{settings.bind_host}:{settings.airflow.port}"
    path = os.pathsep.join([str(venv_bin()), os.environ.get("PATH", "")])
    pythonpath = os.pathsep.join(
        p for p in [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")] if p
    )
    env = {
        **os.environ,
        **spark_environment(settings),
        "PATH": path,
        "PYTHONPATH": pythonpath,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow.parallelism),
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": Postgres(settings).sqlalchemy_url(),
        "AIRFLOW__API__HOST": settings.bind_host,
        "AIRFLOW__API__PORT": str(settings.airflow.port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.paths.log_dir / "airflow"),
        # Task logs as private as the rest of the state dir (Airflow's defaults are 775/664).
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o750",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o640",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # Connections: nothing is typed into the UI by hand.  kafka_default is derived from
        # [kafka] (brokers and security) for the apache-kafka provider; the platform's own
        # tasks read the settings themselves, so the two cannot disagree.
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
            {
                "conn_type": "kafka",
                "extra": confluent_options(settings.kafka.security, settings.bootstrap_servers),
            }
        ),
        # The schema registry's Confluent-compatible API ([registry]), for your own tasks and
        # the HTTP operators; the platform's tasks read the same URL from the settings.
        "AIRFLOW_CONN_ECOM_SCHEMA_REGISTRY": json.dumps(
            {"conn_type": "http", "host": settings.registry_url}
        ),
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
            {
                "conn_type": "spark",
                "host": settings.spark.master,
                "extra": {"deploy-mode": "client", "spark-binary": "spark-submit"},
            }
        ),
    }
    # The alerts' SMTP server and the dead-letter watcher's consumer (kafka_default's
    # brokers and security, a consumer group of its own).
    env |= alert_connections(settings, env["AIRFLOW_CONN_KAFKA_DEFAULT"])
    java = shutil.which("java")
    if "JAVA_HOME" not in env and java:
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    return env


def airflow_cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `airflow <args>` with the platform's Airflow environment; output captured."""
    return subprocess.run(
        [str(venv_bin() / "airflow"), *args],
        env=airflow_environment(settings),
        capture_output=True,
        text=True,
        check=check,
        cwd=PROJECT_ROOT,
    )


class AirflowComponent(Service):
    """One Airflow component (``airflow <component>``); only the API server has a port."""

    def __init__(self, component: str, settings: Settings) -> None:
        port = settings.airflow.port if component == "api-server" else 0
        super().__init__(f"airflow-{component}", settings, port, depends_on=("postgres",))
        self.component = component
        if port:
            self.url = f"http://{settings.bind_host}:{port}"

    def prepare(self) -> None:
        """Create the Airflow home and, once, the admin's password file (mode 600)."""
        home = self.settings.paths.airflow_home
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        if not passwords.exists():
            passwords.touch(mode=0o600)
            passwords.write_text(
                json.dumps(
                    {
                        self.settings.airflow.admin_user: platform_secrets(self.settings)[
                            "airflow_admin_password"
                        ],
                    }
                )
            )

    def command(self) -> list[str]:
        """``airflow <component>``; the scheduler and triggerer without their log servers."""
        argv = [str(venv_bin() / "airflow"), self.component]
        if self.component in ("scheduler", "triggerer"):
            # Their log servers bind every interface (no host setting) on fixed ports; with
            # the LocalExecutor the API server reads task logs from the shared log folder.
            argv.append("--skip-serve-logs")
        return argv

    def environment(self) -> dict[str, str]:
        """The platform's Airflow environment (:func:`airflow_environment`)."""
        return airflow_environment(self.settings)

    HEALTH_KEYS = {
        "scheduler": "scheduler",
        "dag-processor": "dag_processor",
        "triggerer": "triggerer",
    }

    def healthy(self) -> bool:
        """The API server: it answers on its port.  The others: their process runs and the API
        server's health report calls them healthy."""
        if self.port:
            return self.answers()
        # The other components answer through their heartbeat, which the API server reports.
        if not self.running():
            return False
        return airflow_health(self.settings).get(self.HEALTH_KEYS[self.component]) == "healthy"

    def start_timeout(self) -> float:
        """Seconds an Airflow component gets to become healthy: 180."""
        return 180.0


def airflow_health(settings: Settings) -> dict[str, str]:
    """Component -> status from /api/v2/monitor/health ({} when the API does not answer)."""
    import requests

    url = f"http://{settings.bind_host}:{settings.airflow.port}/api/v2/monitor/health"
    try:
        body = requests.get(url, timeout=3).json()
    except (requests.RequestException, ValueError):
        return {}
    return {name: (info or {}).get("status", "unknown") for name, info in body.items()}


def migrate_airflow_db(settings: Settings) -> None:
    """Create or upgrade Airflow's metadata schema (`airflow db migrate`)."""
    result = airflow_cli(settings, "db", "migrate", check=False)
    if result.returncode != 0:
        raise PlatformError(
            "`airflow db migrate` failed:\n" + "\n".join(result.stderr.splitlines()[-20:])
        )
