"""What the quality runs leave behind under ``settings.paths.quality_dir``.

* ``history.jsonl``: one JSON line per run (:meth:`RunReport.to_json_dict`): per table and
  per check its severity, status (pass, warn, fail), observed value and a plain-words
  detail.  Rotated by size (``[maintenance] jsonl_max_bytes``, :mod:`include.jsonlines`);
  the report pages read it through :func:`newest_runs`, from the end, only what they show.
* ``validated.json``: per table label, the last Delta version validated, from which an
  incremental run reads on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from include.jsonfile import read_json, write_json
from include.jsonlines import append_line, newest_lines, records
from include.quality.report import RunReport
from include.settings import Settings

HISTORY_FILE = "history.jsonl"
VALIDATED_FILE = "validated.json"


def load_validated(settings: Settings) -> dict[str, int]:
    """Per table label, the Delta version its last check validated (empty: none yet)."""
    found = read_json(settings.paths.quality_dir / VALIDATED_FILE, {})
    return {k: int(v) for k, v in found.items()} if isinstance(found, dict) else {}


def save_validated(settings: Settings, versions: Mapping[str, int]) -> None:
    """Record ``versions`` (table label -> Delta version) as the last validated ones."""
    write_json(settings.paths.quality_dir / VALIDATED_FILE, dict(versions))


def append_history(settings: Settings, report: RunReport) -> Path:
    """Append one JSON line for ``report`` to the history file and return its path (the
    file is rotated first when the line would take it past ``jsonl_max_bytes``)."""
    path = settings.paths.quality_dir / HISTORY_FILE
    line = json.dumps(report.to_json_dict(), default=_json_default, sort_keys=True)
    care = settings.maintenance
    append_line(path, line, care.jsonl_max_bytes, care.jsonl_keep_files)
    return path


def newest_runs(settings: Settings) -> Iterator[dict[str, Any]]:
    """The recorded runs, newest first, read lazily from the end of the history files."""
    yield from records(newest_lines(settings.paths.quality_dir / HISTORY_FILE))


def read_history(settings: Settings, limit: int | None = None) -> list[dict[str, Any]]:
    """The recorded runs, newest first (the last ``limit`` only, when given: only those are
    read)."""
    runs: list[dict[str, Any]] = []
    for run in newest_runs(settings):
        if limit and len(runs) >= limit:
            break
        runs.append(run)
    return runs


def newest_run(settings: Settings, matches: Callable[[dict], bool]) -> dict[str, Any] | None:
    """The newest recorded run for which ``matches`` is true; reading stops there."""
    return next((run for run in newest_runs(settings) if matches(run)), None)


def _json_default(value: Any) -> Any:
    # Samples can hold Timestamps, Decimals or numpy numbers; NaN is written as null.
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)
