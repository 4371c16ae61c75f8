"""Launch the real streaming application with spark-submit, as the streaming DAG does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from include.runtime.spark_submit import STREAMING_APP, launch_app
from include.settings import Settings


def launch(settings: Settings, log_file: Path, *app_args: str) -> subprocess.Popen:
    return launch_app(settings, STREAMING_APP, log_file, *app_args)
