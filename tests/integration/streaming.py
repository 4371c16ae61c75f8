"""Launch the real streaming application with spark-submit, as the streaming DAG does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import Settings


def launch(settings: Settings, log_file: Path, *app_args: str) -> subprocess.Popen:
    return launch_app(settings, STREAMING_APP, log_file, *app_args)


def said_wrong(log_file: Path, limit: int = 10) -> str:
    """The app's own error and warning lines from its log, for a failing test's message
    (CI keeps the test output, not the log)."""
    lines = [
        line
        for line in log_file.read_text(errors="replace").splitlines()
        if " streaming_app: " in line and (" ERROR " in line or " WARNING " in line)
    ]
    return "\n".join(lines[-limit:]) or "(no errors logged)"
