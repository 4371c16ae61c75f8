"""Launch the real streaming application with spark-submit, as the streaming DAG does, and
read what its progress records say."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import Settings
from include.streaming.progress import read_progress


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


def progress_records(settings: Settings) -> list[dict]:
    return read_progress(settings.paths.metrics_dir)


def dropped_by_watermark(records: list[dict]) -> Counter:
    dropped: Counter = Counter()
    for record in records:
        dropped[record["name"]] += record["rowsDroppedByWatermark"]
    return dropped


def have_read(record: dict, offsets: dict[int, int], topic: str) -> bool:
    """Whether the batch of this progress record ended past every given offset of `topic`."""
    (source,) = record["sources"]
    ends = source["endOffset"][topic]
    return all(int(ends.get(str(p), 0)) > offset for p, offset in offsets.items())
