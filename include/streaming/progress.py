"""The streaming progress records: one JSON line per micro-batch per query.

The Spark driver's listener appends them to ``<state>/metrics/progress.jsonl``, rotated by
size (``[maintenance] jsonl_max_bytes``, :mod:`include.jsonlines`); the supervisor, the
health page, the benchmarks and the tests read them through this module, across the
rotated files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from include.jsonlines import all_lines, records, tail_lines

PROGRESS_FILE = "progress.jsonl"
# A tail this big holds hours of records for every query at the default trigger.
DEFAULT_TAIL_BYTES = 8_000_000


def progress_path(metrics_dir: Path) -> Path:
    """The progress file under `metrics_dir`."""
    return metrics_dir / PROGRESS_FILE


def _lines(path: Path, tail_bytes: int | None) -> list[str]:
    return all_lines(path) if tail_bytes is None else tail_lines(path, tail_bytes)


def read_progress(metrics_dir: Path, tail_bytes: int | None = None) -> list[dict[str, Any]]:
    """Every record in file order (only the file's last ``tail_bytes`` when given)."""
    return list(records(_lines(progress_path(metrics_dir), tail_bytes)))


def last_progress(metrics_dir: Path, queries: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The newest record per query, read from the file's tail."""
    wanted, found = set(queries), {}
    lines = _lines(progress_path(metrics_dir), DEFAULT_TAIL_BYTES)
    for record in records(reversed(lines)):
        name = record.get("name")
        if name in wanted and name not in found:
            found[name] = record
        if len(found) == len(wanted):
            break
    return found
