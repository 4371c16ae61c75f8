"""Streaming checkpoints: read them, check them, back them up, retire them on purpose.

A Structured Streaming checkpoint holds ``metadata`` (the query id), ``offsets/<n>`` (batch
n is planned: its source offsets, written before it runs) and ``commits/<n>`` (batch n is
done).  The Spark Kafka source commits nothing to Kafka consumer groups, so the offsets
here are the only record of how far a query has read: lag is computed from them.

Command line (what the error messages point to)::

    python -m include.streaming.checkpoints check        # every checkpoint under the state dir
    python -m include.streaming.checkpoints relocate     # start the pipeline afresh, on purpose
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from include.analytics import OUTPUTS
from include.settings import Settings, get_settings
from include.settings.base import PROJECT_ROOT

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "_fingerprint"
BACKUP_DIR = "_backups"
RETIRED_DIR = "_retired"
# The code a streaming checkpoint's state depends on: what the queries compute and how.
STREAMING_CODE = (
    "include/analytics.py",
    "spark_jobs/session.py",
    "spark_jobs/validation.py",
    "spark_jobs/transforms.py",
    "spark_jobs/pipeline.py",
    "spark_jobs/sinks.py",
    "spark_jobs/delta_tables.py",
    "spark_jobs/output_topics.py",
)


@dataclass
class CheckpointReport:
    """What a checkpoint says, and what is wrong with it (``problems`` empty: healthy)."""

    path: Path
    query_id: str | None = None
    last_planned: int | None = None
    last_committed: int | None = None
    # Source offsets of the last committed batch: {topic: {partition: offset}}.
    committed_offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    committed_watermark_ms: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        """Whether the query ever started here (the checkpoint has its ``metadata`` file)."""
        return (self.path / "metadata").exists()

    @property
    def healthy(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def _batches(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _log_lines(path: Path) -> list[str]:
    """A batch log file's lines after its version line; ValueError if it is not one."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("v"):
        raise ValueError("no version line")
    return lines[1:]


def inspect(checkpoint: Path) -> CheckpointReport:
    """Read the checkpoint at `checkpoint`: query id, last planned and committed batches, the
    committed batch's source offsets and watermark, and its problems (unparsable metadata or
    log files among the last two batches, a commit without a plan, more than one batch
    planned ahead).  A checkpoint that does not exist gives an empty report, healthy."""
    report = CheckpointReport(checkpoint)
    if not report.exists:
        return report
    try:
        report.query_id = json.loads((checkpoint / "metadata").read_text().splitlines()[0])["id"]
    except (ValueError, KeyError, IndexError) as error:
        report.problems.append(f"metadata does not parse ({error})")

    planned, committed = _batches(checkpoint / "offsets"), _batches(checkpoint / "commits")
    report.last_planned = planned[-1] if planned else None
    report.last_committed = committed[-1] if committed else None
    for directory, batches in (("offsets", planned[-2:]), ("commits", committed[-2:])):
        for batch in batches:
            try:
                for line in _log_lines(checkpoint / directory / str(batch)):
                    if line.strip():
                        json.loads(line)
            except (ValueError, OSError) as error:
                report.problems.append(f"{directory}/{batch} does not parse ({error})")

    if report.last_committed is not None:
        if report.last_planned is None or report.last_committed > report.last_planned:
            report.problems.append(
                f"batch {report.last_committed} is committed but was never planned"
            )
        else:
            try:
                _meta, *sources = _log_lines(checkpoint / "offsets" / str(report.last_committed))
                for line in sources:
                    offsets = json.loads(line)
                    if isinstance(offsets, dict):
                        report.committed_offsets.update(
                            {
                                t: {p: int(o) for p, o in parts.items()}
                                for t, parts in offsets.items()
                                if isinstance(parts, dict)
                            }
                        )
                commit = _log_lines(checkpoint / "commits" / str(report.last_committed))
                report.committed_watermark_ms = json.loads(commit[0]).get("nextBatchWatermarkMs")
            except (ValueError, OSError, IndexError):
                pass  # already reported above
    if report.last_planned is not None:
        behind = report.last_planned - (
            report.last_committed if report.last_committed is not None else -1
        )
        if behind > 1:
            report.problems.append(
                f"batches {report.last_planned - behind + 1}..{report.last_planned} are planned "
                f"but only up to {report.last_committed} committed (more than one batch apart)"
            )
    return report


def lag(report: CheckpointReport, end_offsets: dict[str, dict[str, int]]) -> dict[str, int]:
    """Records between the last committed batch and Kafka's end, per "topic/partition"."""
    behind = {}
    for topic, partitions in end_offsets.items():
        done = report.committed_offsets.get(topic, {})
        for partition, end in partitions.items():
            behind[f"{topic}/{partition}"] = max(0, int(end) - done.get(str(partition), 0))
    return behind


# ---------------------------------------------------------------- backups


def fingerprint(settings: Settings) -> str:
    """Changes when the code or the settings that shape a query's state change."""
    digest = hashlib.sha256()
    for name in STREAMING_CODE:
        path = PROJECT_ROOT / name
        digest.update(name.encode())
        digest.update(path.read_bytes())
    digest.update(settings.analytics.model_dump_json().encode())
    digest.update(settings.events.model_dump_json().encode())
    digest.update(str(settings.spark.shuffle_partitions).encode())
    digest.update(settings.spark.state_store.encode())
    return digest.hexdigest()[:16]


def backup(checkpoint: Path, reason: str, keep: int = 5) -> Path:
    """Copy the checkpoint (state included) aside; keep the `keep` newest copies."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    root = checkpoint.parent / BACKUP_DIR / checkpoint.name
    target = root / f"{stamp}-{reason}"
    shutil.copytree(checkpoint, target, ignore=shutil.ignore_patterns("_driver.lease"))
    for old in sorted(root.iterdir())[:-keep]:
        shutil.rmtree(old)
    return target


def backup_if_changed(checkpoint: Path, current: str) -> Path | None:
    """Before a query resumes with other code or config: back its checkpoint up."""
    marker = checkpoint / FINGERPRINT_FILE
    previous = marker.read_text().strip() if marker.exists() else None
    copy = None
    if previous is not None and previous != current and (checkpoint / "metadata").exists():
        copy = backup(checkpoint, "before-change")
        log.warning(
            "the code or config changed since checkpoint %s was last used; backed it up to %s",
            checkpoint,
            copy,
        )
    checkpoint.mkdir(parents=True, exist_ok=True)
    marker.write_text(current + "\n")
    return copy


# ---------------------------------------------------------------- relocating


def relocate_command() -> str:
    """The command that relocates the pipeline's checkpoint, for messages that tell an
    operator to run it."""
    return ".venv/bin/python -m include.streaming.checkpoints relocate"


def legacy_checkpoints(settings: Settings) -> list[Path]:
    """Checkpoints of the six-query design (one per output, before the one query): a
    pipeline cannot continue from them."""
    return [
        path
        for output in OUTPUTS
        if ((path := settings.paths.checkpoint_path(output.name)) / "metadata").exists()
    ]


def relocate(settings: Settings) -> Path:
    """Move the pipeline's checkpoint, any checkpoint of the six-query design *and* every
    sink table aside, together.

    All of them, because each table's exactly-once guard is keyed by the checkpoint's query
    id: a fresh checkpoint over the old tables would append every row again.  The pipeline
    then rebuilds every table from the earliest offset Kafka still holds.  Nothing is
    deleted: the moved folders stay under ``<checkpoints>/_retired/<stamp>/``.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = settings.paths.checkpoint_root / RETIRED_DIR / stamp
    target.mkdir(parents=True)
    moves = [("checkpoints/pipeline", settings.paths.pipeline_checkpoint)]
    moves += [(f"checkpoints/{p.name}", p) for p in legacy_checkpoints(settings)]
    moves += [(f"tables/{o.name}", settings.paths.table_path(o.name)) for o in OUTPUTS]
    for kind, path in moves:
        if path.exists():
            (target / kind).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target / kind))
    return target


def main(argv: list[str] | None = None) -> int:
    """The command line of the module docstring; the exit code is 1 when a checked checkpoint
    has a problem."""
    parser = argparse.ArgumentParser(
        prog="python -m include.streaming.checkpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="check every checkpoint")
    sub.add_parser(
        "relocate", help="move the pipeline's checkpoint and the sink tables aside, together"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "relocate":
        target = relocate(settings)
        print(
            f"moved the checkpoints and sink tables to {target}; the pipeline starts afresh "
            "from the earliest offset in Kafka at its next launch"
        )
        return 0
    code = 0
    queries = (
        sorted(
            p.name
            for p in settings.paths.checkpoint_root.iterdir()
            if p.is_dir() and not p.name.startswith("_")
        )
        if settings.paths.checkpoint_root.exists()
        else []
    )
    for query in queries:
        report = inspect(settings.paths.checkpoint_path(query))
        state = "ok" if report.healthy else "; ".join(report.problems)
        print(f"{query}: planned {report.last_planned}, committed {report.last_committed}: {state}")
        code |= 0 if report.healthy else 1
    return code


if __name__ == "__main__":
    sys.exit(main())
