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
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


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
        # Logins with roles (viewer, operator, admin: include/runtime/users.py), users in
        # the metadata database; the simple auth manager is for development only.
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
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
        """Create the Airflow home."""
        self.settings.paths.airflow_home.mkdir(parents=True, exist_ok=True)

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
    """Create or upgrade Airflow's metadata schema (`airflow db migrate`; the FAB auth
    manager's users and roles tables with it), then make sure the platform's admin exists with
    the password of the state dir's secrets.

    A state dir from before the FAB auth manager had its admin in ``airflow/passwords.json``
    (the simple auth manager): the same admin and password now live in the database, and the
    old file is removed."""
    result = airflow_cli(settings, "db", "migrate", check=False)
    if result.returncode != 0:
        raise PlatformError(
            "`airflow db migrate` failed:\n" + "\n".join(result.stderr.splitlines()[-20:])
        )
    ensure_admin(settings)
    (settings.paths.airflow_home / "passwords.json").unlink(missing_ok=True)


def ensure_admin(settings: Settings) -> None:
    """The platform's admin user (``[airflow] admin_user``) with the role admin and the
    password of the state dir's secrets, which `make up` and the tests log in with."""
    command = ["-m", "include.runtime.users", "add", settings.airflow.admin_user, "--role", "admin"]
    result = subprocess.run(
        [str(venv_bin() / "python"), *command],
        input=platform_secrets(settings)["airflow_admin_password"] + "\n",
        env=airflow_environment(settings),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    if result.returncode != 0:
        raise PlatformError(
            "could not create Airflow's admin user:\n"
            + "\n".join((result.stderr or result.stdout).splitlines()[-20:])
        )
