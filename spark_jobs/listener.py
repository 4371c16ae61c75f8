"""Streaming progress: JSON lines per micro-batch for the supervisor, the UI and the
benchmarks (``<metrics_dir>/progress.jsonl``, rotated by size, read by
``include.streaming.progress``).

The one streaming query writes every output, so each of its batches gives one record for the
query (named after it) and one per output (named after the output), which carries the query's
batch figures (rates, duration, offsets, watermark) and the output's own: the rows it wrote
in the batch (``numOutputRows``) and the state and late rows of its branch's operators.
It also advances the driver's running totals (``streaming_totals.json`` beside the progress
file, :class:`include.streaming.progress.StreamTotals`), once per batch id: the counters
Prometheus rates.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from include.jsonlines import append_line
from include.settings import get_settings
from include.streaming.progress import TOTALS_FILE, StreamTotals
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
                # Where the batch started reading (None for a new query's first batch).
                "startOffset": source.get("startOffset"),
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


def output_records(
    query_record: dict[str, Any],
    operators: Mapping[str, int],
    rows_written: Mapping[str, int] | None,
) -> list[dict[str, Any]]:
    """One record per output from the query's record: ``operators`` gives how many of the
    query's stateful operators each output's branch has, in order (spark_jobs.pipeline)."""
    records = []
    ops = query_record["stateOperators"]
    at = 0
    for output, count in operators.items():
        mine = ops[at : at + count]
        at += count
        records.append(
            {
                **query_record,
                "name": output,
                "query": query_record["name"],
                "numOutputRows": None if rows_written is None else rows_written.get(output, 0),
                "rowsDroppedByWatermark": sum(
                    op.get("numRowsDroppedByWatermark") or 0 for op in mine
                ),
                "stateRowsTotal": sum(op.get("numRowsTotal") or 0 for op in mine),
                "stateOperators": mine,
            }
        )
    return records


class ProgressRecorder(StreamingQueryListener):
    """Appends the JSON lines of each progress event; logs starts and terminations.

    ``operators`` (output -> stateful operators of its branch, in order) and
    ``sink_report`` (batch id -> the sink's ``rows`` per output and step ``ms``) make the
    per-output records and the query record's ``sinkMs``; without them only the query's
    record is written.  The running totals live in ``streaming_totals.json`` beside
    ``path``, loaded here (the driver's start) and replaced after every batch; their rows
    in are the records of ``input_topic`` (default: the settings').
    """

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        keep: int,
        operators: Mapping[str, int] | None = None,
        sink_report: Callable[[int], Mapping[str, Any] | None] | None = None,
        input_topic: str | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        # Rotation bounds ([maintenance] jsonl_*): rotated by this, the file's one writer,
        # under its lock, so no record is split or lost (include.jsonlines).
        self.max_bytes = max_bytes
        self.keep = keep
        self.operators = dict(operators or {})
        self.sink_report = sink_report
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        # Rows in counts the input topic's records, not the idle rule's control records.
        self.input_topic = input_topic or get_settings().kafka.input_topic
        self.totals = StreamTotals(path.with_name(TOTALS_FILE), self.input_topic, self.operators)
        try:
            # Written at once, so every output's counter shows (at its total) from the start.
            self.totals.save()
        except OSError:
            log.exception("could not write the streaming totals to %s", self.totals.path)

    def onQueryStarted(self, event: Any) -> None:
        """Log the start, and remember the query's name for its termination."""
        name = event.name or str(event.id)
        self._names[str(event.id)] = name
        log.info("query %s is running (id %s, run %s)", name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        """Append the batch's records; a failure to write is logged, never raised."""
        try:
            record = progress_record(json.loads(event.progress.json))
            report = None if self.sink_report is None else self.sink_report(record["batchId"])
            if report is not None:
                record["sinkMs"] = report["ms"]
            written = None if report is None else report["rows"]
            lines = [record]
            late = None
            if self.operators:
                outputs = output_records(record, self.operators, written)
                lines += outputs
                late = {o["name"]: o["rowsDroppedByWatermark"] for o in outputs}
            with self._lock:
                for line in lines:
                    append_line(self.path, json.dumps(line), self.max_bytes, self.keep)
                if self.totals.advance(record, written, late):
                    self.totals.save()
                    if written is None and self.sink_report is not None:
                        log.warning(
                            "batch %s: the sink's row counts were no longer known; its "
                            "output rows are missing from the totals",
                            record["batchId"],
                        )
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
