"""Small JSON state files (health record, validated and announced versions): read with a
default, written atomically so a reader never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path, default: Any) -> Any:
    """The file's JSON, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` beside ``path`` and rename it into place (atomic on one filesystem)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_suffix(".tmp")
    draft.write_text(json.dumps(data, sort_keys=True))
    draft.replace(path)
    return path
