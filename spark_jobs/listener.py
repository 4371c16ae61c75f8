"""Streaming progress: one JSON line per micro-batch for the supervisor, the UI and the
benchmarks (``<metrics_dir>/progress.jsonl``, rotated by size, read by ``include.progress``)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from include.jsonlines import append_line
from spark_jobs.lifecycle import error_summary

# Every line the driver logs carries the application's name (tests and users grep it).
log = logging.getLogger("streaming_app")


def _offsets_behind(end: Any, latest: Any) -> int | None:
    """Sum over partitions of latest - end for Kafka-style ``{topic: {partition: n}}``."""
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return None
    behind = 0
    for topic, partitions in latest.items():
        done = end.get(topic, {})
        if not isinstance(partitions, dict) or not isinstance(done, dict):
            return None
        for partition, offset in partitions.items():
            # A partition the batch has not seen yet (added since) is behind by all of it.
            behind += max(0, int(offset) - int(done.get(partition, 0)))
    return behind


def progress_record(progress: dict[str, Any]) -> dict[str, Any]:
    """The fields of a StreamingQueryProgress (as JSON) the supervisor and UI read."""
    duration = progress.get("durationMs") or {}
    return {
        "name": progress.get("name"),
        "id": progress.get("id"),
        "runId": progress.get("runId"),
        "batchId": progress.get("batchId"),
        "timestamp": progress.get("timestamp"),
        "numInputRows": progress.get("numInputRows"),
        "inputRowsPerSecond": progress.get("inputRowsPerSecond"),
        "processedRowsPerSecond": progress.get("processedRowsPerSecond"),
        "batchDurationMs": progress.get("batchDuration", duration.get("triggerExecution")),
        "durationMs": duration,
        "watermark": (progress.get("eventTime") or {}).get("watermark"),
        "sources": [
            {
                "description": source.get("description"),
                "endOffset": source.get("endOffset"),
                "latestOffset": source.get("latestOffset"),
                "offsetsBehindLatest": _offsets_behind(
                    source.get("endOffset"), source.get("latestOffset")
                ),
                "numInputRows": source.get("numInputRows"),
                # The Kafka source reports min/avg/maxOffsetsBehindLatest here.
                "metrics": source.get("metrics") or {},
            }
            for source in progress.get("sources") or []
        ],
        # Events later than the watermark, over all stateful operators: counted, not lost
        # silently (they are also in the source topic for a backfill to pick up).
        "rowsDroppedByWatermark": sum(
            op.get("numRowsDroppedByWatermark") or 0 for op in progress.get("stateOperators") or []
        ),
        "stateRowsTotal": sum(
            op.get("numRowsTotal") or 0 for op in progress.get("stateOperators") or []
        ),
        "stateOperators": [
            {
                "operatorName": op.get("operatorName"),
                "numRowsTotal": op.get("numRowsTotal"),
                "memoryUsedBytes": op.get("memoryUsedBytes"),
                "numRowsDroppedByWatermark": op.get("numRowsDroppedByWatermark"),
                # Where a batch's state time goes (benchmarks/breakdown.py reads these).
                "commitTimeMs": op.get("commitTimeMs"),
                "allUpdatesTimeMs": op.get("allUpdatesTimeMs"),
                "allRemovalsTimeMs": op.get("allRemovalsTimeMs"),
                "customMetrics": op.get("customMetrics") or {},
            }
            for op in progress.get("stateOperators") or []
        ],
    }


class ProgressRecorder(StreamingQueryListener):
    """Appends one JSON line per progress event; logs starts and terminations."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        super().__init__()
        self.path = path
        # Rotation bounds ([maintenance] jsonl_*): rotated by this, the file's one writer,
        # under its lock, so no record is split or lost (include.jsonlines).
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        path.parent.mkdir(parents=True, exist_ok=True)

    def onQueryStarted(self, event: Any) -> None:
        """Log the start, and remember the query's name for its termination."""
        name = event.name or str(event.id)
        self._names[str(event.id)] = name
        log.info("query %s is running (id %s, run %s)", name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        """Append the batch's progress record; a failure to write is logged, never raised."""
        try:
            line = json.dumps(progress_record(json.loads(event.progress.json)))
            with self._lock:
                append_line(self.path, line, self.max_bytes, self.keep)
        except Exception:
            # A metrics hiccup (disk full, odd JSON) must not disturb the query.
            log.exception("could not record streaming progress in %s", self.path)

    def onQueryIdle(self, event: Any) -> None:
        """Nothing to record: an idle trigger ran no batch."""
        pass

    def onQueryTerminated(self, event: Any) -> None:
        """Log the end, with a summary of the error when the query failed."""
        name = self._names.get(str(event.id), str(event.id))
        if event.exception:
            log.error("query %s terminated with an error: %s", name, error_summary(event.exception))
        else:
            log.info("query %s terminated", name)
