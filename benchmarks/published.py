"""Where a benchmark run's results are published (docs/benchmarks/), and the stages'
own published runs that a full run which skipped them shows instead."""

from __future__ import annotations

import json
from pathlib import Path

from include.settings.base import PROJECT_ROOT

PUBLISHED = PROJECT_ROOT / "docs" / "benchmarks"


def published_stage(stage: str) -> dict | None:
    """A stage's own published run (`python -m benchmarks.<stage>`, docs/benchmarks/), which
    a full run that skipped the stage shows instead."""
    separate = PUBLISHED / f"{stage}.json"
    return json.loads(separate.read_text()) if separate.exists() else None


def publish_stage(stage: str, found: dict) -> Path:
    """Write a stage's own run where published_stage reads it."""
    PUBLISHED.mkdir(parents=True, exist_ok=True)
    path = PUBLISHED / f"{stage}.json"
    path.write_text(json.dumps(found, indent=2) + "\n")
    return path
