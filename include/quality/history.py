"""What the quality runs leave behind under ``settings.quality_dir``.

* ``history.jsonl``: one JSON line per run (:meth:`RunReport.to_json_dict`): per table and
  per check its severity, status (pass, warn, fail), observed value and a plain-words
  detail.  The report pages read it through :func:`read_history`.
* ``validated.json``: per table label, the last Delta version validated, from which an
  incremental run reads on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.jsonfile import read_json, write_json
from include.quality.report import RunReport
from include.settings import Settings

HISTORY_FILE = "history.jsonl"
VALIDATED_FILE = "validated.json"


def load_validated(settings: Settings) -> dict[str, int]:
    """Per table label, the Delta version its last check validated (empty: none yet)."""
    found = read_json(settings.quality_dir / VALIDATED_FILE, {})
    return {k: int(v) for k, v in found.items()} if isinstance(found, dict) else {}


def save_validated(settings: Settings, versions: Mapping[str, int]) -> None:
    """Record ``versions`` (table label -> Delta version) as the last validated ones."""
    write_json(settings.quality_dir / VALIDATED_FILE, dict(versions))


def append_history(settings: Settings, report: RunReport) -> Path:
    """Append one JSON line for ``report`` to the history file and return its path."""
    path = settings.quality_dir / HISTORY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(report.to_json_dict(), default=_json_default, sort_keys=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    return path


def read_history(settings: Settings, limit: int | None = None) -> list[dict[str, Any]]:
    """The recorded runs, newest first (the last ``limit`` only, when given)."""
    path = settings.quality_dir / HISTORY_FILE
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue
    runs.reverse()
    return runs[:limit] if limit else runs


def _json_default(value: Any) -> Any:
    # Samples can hold Timestamps, Decimals or numpy numbers; NaN is written as null.
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)
