"""How the streaming app's queries run, stop and fail: the supervision loop, the graceful
stop at a batch boundary, reading Spark's errors, and the checkpoint checks before a start.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql.streaming import StreamingQuery

from include.settings import Settings
from include.streaming import checkpoints

# Every line the driver logs carries the application's name (tests and users grep it).
log = logging.getLogger("streaming_app")

POLL_SECONDS = 1.0
# How long a graceful stop waits for the running micro-batches before interrupting them.
# Interrupting is still safe (the Delta writes are idempotent), just wasteful.  Below the
# supervisor's stop_timeout_seconds (120 s), so that the driver ends before a hard kill.
GRACEFUL_STOP_TIMEOUT_SECONDS = 90.0
STOP_POLL_SECONDS = 0.1


def error_summary(error: object) -> str:
    """One line for the log: the first line of the error and, when the JVM reported one,
    the innermost ``...Exception: ...``/``...Error: ...`` line (the root cause)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return repr(error)
    text = error_text(error)
    causes = re.findall(r"^(?:: |Caused by: )?([\w.$]+(?:Exception|Error)\b.*)$", text, re.M)
    if causes and causes[-1] != lines[0]:
        return f"{lines[0]} (cause: {causes[-1]})"
    return lines[0]


def last_batch_id(query: StreamingQuery) -> int:
    """The id of the query's last finished micro-batch in this run (-1: none yet)."""
    progress = query.lastProgress
    return -1 if progress is None else int(progress["batchId"])


def stop_gracefully(
    queries: Sequence[StreamingQuery], timeout: float = GRACEFUL_STOP_TIMEOUT_SECONDS
) -> None:
    """Stop every query as soon as the micro-batch it is running has finished.

    The queries are watched together, so the wait is the longest running batch, not the
    sum.  A query that is behind starts its next batch the moment one ends, so it is
    rarely seen idle: its boundary is the end of the batch that was running when the stop
    was asked (a newer batch id).  A batch Spark may have planned in that instant is
    interrupted and replayed on the next start (once in Delta, at least once on Kafka,
    as after any crash).  After `timeout`, a batch still running is interrupted.
    """
    running = {q: last_batch_id(q) for q in queries if q.isActive}
    deadline = time.monotonic() + timeout
    while running:
        for query, batch_at_request in list(running.items()):
            busy = query.isActive and query.status.get("isTriggerActive")
            if busy and last_batch_id(query) == batch_at_request:
                continue
            if query.isActive:
                query.stop()
            log.info("stopped query %s after batch %d", query.name, last_batch_id(query))
            del running[query]
        if running and time.monotonic() >= deadline:
            for query in running:
                log.warning(
                    "query %s still busy after %.0f s; interrupting it", query.name, timeout
                )
                query.stop()
            break
        time.sleep(STOP_POLL_SECONDS)


# What a batch that the stop cut short fails with.  Spark stops a query by cancelling its
# jobs and interrupting its thread, and hides the errors that causes, except where a
# library turns the interrupt into its own error (Hadoop's shell, the Kafka producer,
# Delta, a Python foreachBatch): then the stopped query reports a failure.
STOP_INTERRUPTION = re.compile(
    r"Interrupt(ed)?(Exception|IOException)?\b|ClosedByInterrupt|cancell?ed|"
    r"SparkContext (was|has been) shut ?down",
    re.IGNORECASE,
)


def error_text(error: object) -> str:
    """An error's messages and those of its causes, without stack frames or the query's
    description. pyspark's StreamingQueryException can say just "null" (a JVM exception
    without a message): its causes are in ``_cause``, and each cause's JVM trace, with
    its "Caused by:" lines, in ``_stackTrace``."""
    parts: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for text in (str(error), getattr(error, "_stackTrace", None)):
            if text:
                text = str(text).split("=== Streaming Query ===", 1)[0]
                parts += [ln for ln in text.splitlines() if not ln.strip().startswith("at ")]
        error = getattr(error, "_cause", None) or getattr(error, "__cause__", None)
    return "\n".join(parts)


def interrupted_by_stop(error: object) -> bool:
    """Whether a query's error is its last batch being cut short by our own stop."""
    return STOP_INTERRUPTION.search(error_text(error)) is not None


# What Spark says when a query no longer fits its checkpoint (changed aggregation, state
# schema, operators, sources).
INCOMPATIBLE_CHECKPOINT = re.compile(
    r"STATE_STORE_\w*(SCHEMA|MISMATCH|INCOMPATIBLE)|StateSchemaNotCompatible|"
    r"schema for existing state|not compatible with|number of stateful operators|"
    r"STREAMING_STATEFUL_OPERATOR_NOT_MATCH_IN_STATE_METADATA|different.*checkpoint|"
    r"sources in the checkpoint offsets",
    re.IGNORECASE,
)


def checkpoint_hint(query: str, error: object) -> str | None:
    """Plain words and the exact command when Spark refused the query's checkpoint."""
    if not INCOMPATIBLE_CHECKPOINT.search(str(error)):
        return None
    return (
        f"query {query} cannot continue from its checkpoint: Spark refuses it, most likely "
        "because the query's code or config changed. Nothing was deleted. To start it "
        f"afresh on purpose, run `{checkpoints.relocate_command()}`: it moves the "
        "checkpoint and the sink tables aside together, and the pipeline rebuilds them from "
        "the earliest offset Kafka still holds. Backups taken before the change are under "
        f"{checkpoints.BACKUP_DIR}/ next to the checkpoint."
    )


def check_checkpoints(settings: Settings) -> str | None:
    """Refusal message when the pipeline's checkpoint is damaged or only checkpoints of the
    six-query design are there; backs the checkpoint up when code or config changed."""
    path = settings.paths.pipeline_checkpoint
    report = checkpoints.inspect(path)
    if not report.exists and (legacy := checkpoints.legacy_checkpoints(settings)):
        return (
            "the state dir holds checkpoints of the six-query design ("
            + ", ".join(p.name for p in legacy)
            + "), which the one streaming query cannot continue: nothing was changed. Run "
            f"`{checkpoints.relocate_command()}` once: it moves those checkpoints and the sink "
            "tables aside (nothing is deleted), and the pipeline rebuilds every table from the "
            "earliest offset Kafka still holds."
        )
    if not report.healthy:
        return (
            f"checkpoint {path} looks damaged, nothing was changed: "
            + "; ".join(report.problems)
            + ". Inspect it with `.venv/bin/python -m include.streaming.checkpoints check`; start "
            f"afresh on purpose with `{checkpoints.relocate_command()}`."
        )
    checkpoints.backup_if_changed(path, checkpoints.fingerprint(settings))
    return None


def supervise(
    queries: Sequence[StreamingQuery],
    stop_file: Path | None,
    await_seconds: float | None,
    stop_requested: threading.Event,
) -> int:
    """Wait for a stop request or a failure; return the process exit code."""
    deadline = None if await_seconds is None else time.monotonic() + await_seconds
    while True:
        ended = [q for q in queries if not q.isActive]
        if ended:
            break
        if stop_file is not None and stop_file.exists():
            log.info("stop file %s appeared; stopping after the current batches", stop_file)
            break
        if deadline is not None and time.monotonic() >= deadline:
            log.info("ran for %s s as asked; stopping after the current batches", await_seconds)
            break
        if stop_requested.is_set():
            log.info("stop signal received; stopping after the current batches")
            break
        stop_requested.wait(POLL_SECONDS)

    stop_gracefully(queries)

    code = 0
    for query in queries:
        # A query can also fail while it is being stopped (its last batch).
        error = query.exception()
        if error is not None and query not in ended and interrupted_by_stop(error):
            # Like a crash at that point: nothing of the batch is committed, and the next
            # start replays it (once in Delta, at least once on Kafka).
            log.warning(
                "query %s: the stop cut short the batch after %d, which Spark had just "
                "started; the next start runs it again (%s)",
                query.name,
                last_batch_id(query),
                error_summary(error),
            )
        elif error is not None:
            log.error("query %s failed: %s", query.name, error_summary(error))
            print(f"query {query.name} failed: {error}", file=sys.stderr)
            if hint := checkpoint_hint(query.name, error):
                log.error("%s", hint)
                print(hint, file=sys.stderr)
            code = 1
        elif query in ended:
            log.error("query %s stopped although no stop was requested", query.name)
            print(f"query {query.name} stopped unexpectedly", file=sys.stderr)
            code = 1
    return code
