"""Launch a Spark application of this project with spark-submit, outside Airflow.

The tests and the benchmarks start the streaming application the way the streaming DAG
does (spark-submit from the virtualenv, the connector jars, the project on PYTHONPATH),
each process in its own session so it can be killed as a whole.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from include.runtime.services import jars, spark_environment, venv_bin
from include.settings import PROJECT_ROOT, SPARK_UMASK_CONF, Settings

STREAMING_APP = PROJECT_ROOT / "spark_jobs" / "streaming_app.py"
BACKFILL_APP = PROJECT_ROOT / "spark_jobs" / "backfill_app.py"


def spark_submit_command(
    settings: Settings,
    app: Path,
    *app_args: str,
    master: str = "local[2]",
    driver_memory: str = "1g",
    conf: Mapping[str, str] | None = None,
) -> list[str]:
    return [
        str(venv_bin() / "spark-submit"),
        "--master",
        master,
        "--driver-memory",
        driver_memory,
        "--jars",
        ",".join(str(j) for j in jars(settings, "spark")),
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        f"spark.pyspark.driver.python={sys.executable}",
        # Executors on a standalone worker import the project too.
        "--conf",
        f"spark.executorEnv.PYTHONPATH={PROJECT_ROOT}",
        *(
            arg
            for key, value in {**SPARK_UMASK_CONF, **(conf or {})}.items()
            for arg in ("--conf", f"{key}={value}")
        ),
        str(app),
        *app_args,
    ]


def launch_app(
    settings: Settings,
    app: Path,
    log_file: Path,
    *app_args: str,
    env: dict[str, str] | None = None,
    conf: Mapping[str, str] | None = None,
    **submit_options: str,
) -> subprocess.Popen:
    """Start the app in the background, its output appended to log_file."""
    environment = {
        **os.environ,
        **(env or {}),
        **spark_environment(settings),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            spark_submit_command(settings, app, *app_args, conf=conf, **submit_options),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
