"""Launch the real streaming application with spark-submit, as the streaming DAG does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from include.runtime.services import spark_environment
from include.settings import PROJECT_ROOT, Settings

APP = PROJECT_ROOT / "spark_jobs" / "streaming_app.py"


def spark_submit_command(settings: Settings, *app_args: str) -> list[str]:
    jars = ",".join(str(j) for j in sorted((settings.jar_dir / "spark").glob("*.jar")))
    return [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[2]",
        "--driver-memory",
        "1g",
        "--jars",
        jars,
        "--conf",
        f"spark.pyspark.python={sys.executable}",
        "--conf",
        f"spark.pyspark.driver.python={sys.executable}",
        str(APP),
        *app_args,
    ]


def launch(settings: Settings, log_file: Path, *app_args: str) -> subprocess.Popen:
    env = {**os.environ, **spark_environment(settings), "PYTHONPATH": str(PROJECT_ROOT)}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            spark_submit_command(settings, *app_args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
