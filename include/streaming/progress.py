"""The streaming progress records: one JSON line per micro-batch per query.

The Spark driver's listener appends them to ``<state>/metrics/progress.jsonl``, rotated by
size (``[maintenance] jsonl_max_bytes``, :mod:`include.jsonlines`); the supervisor, the
health page, the benchmarks and the tests read them through this module, across the
rotated files.  Beside them the driver keeps its running totals (:class:`StreamTotals`,
``streaming_totals.json``): the counters ``/ecom/metrics`` exposes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from include.jsonfile import read_json, write_json
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


# ---------------------------------------------------------------- running totals

# The driver's running totals (``ecom_*_total`` counters): kept in their own small file, so
# they survive the progress file's rotation and a restart of the driver.
TOTALS_FILE = "streaming_totals.json"


def totals_path(metrics_dir: Path) -> Path:
    """The streaming driver's totals file under `metrics_dir`."""
    return metrics_dir / TOTALS_FILE


def read_totals(metrics_dir: Path) -> dict[str, Any]:
    """The driver's totals as last written ({} when no driver has written any yet)."""
    found = read_json(totals_path(metrics_dir), {})
    return found if isinstance(found, dict) else {}


class StreamTotals:
    """Counts every micro-batch once: records read from the input topic, rows written per
    output, batches, rows dropped as late per output.

    Prometheus' ``rate()`` needs counters that only go up; the progress records are per
    batch and a 15 s scrape misses some of them.  So the one driver keeps the sums, loads
    them when it starts and advances them once per batch id: a batch Spark replays after a
    crash carries an id already counted (in the same checkpoint, the query ``id``) and adds
    nothing, as its rows were not written twice either (spark_jobs.sinks).  A new checkpoint
    (another query id) starts its ids at 0 again and is counted from there, on top.

    Records read come from the batch's source offsets, not from ``numInputRows``: Spark
    counts that once per branch reading the source (seven times the records with every
    output), and with the idle rule's control records (include.streaming.idle_close).
    """

    def __init__(self, path: Path, input_topic: str | None, outputs: Iterable[str] = ()) -> None:
        self.path = path
        self.input_topic = input_topic
        found = read_json(path, {})
        found = found if isinstance(found, dict) else {}
        self.totals: dict[str, Any] = {
            # Per query id (the checkpoint's; a driver of several queries keeps each apart).
            "last_batch_id": _counts(found.get("last_batch_id")),
            "input_rows": _count(found.get("input_rows")),
            "batches": _count(found.get("batches")),
            "late_rows_dropped": _counts(found.get("late_rows_dropped")),
            "output_rows": _counts(found.get("output_rows")),
        }
        # Every output this driver writes shows from its start, at 0: a counter that
        # appears only with its first rows would hide them from increase().
        for output in outputs:
            self.totals["output_rows"].setdefault(output, 0)
            self.totals["late_rows_dropped"].setdefault(output, 0)

    def advance(
        self,
        record: Mapping[str, Any],
        rows_written: Mapping[str, int] | None,
        late_rows: Mapping[str, int] | None = None,
    ) -> bool:
        """Add one batch: the query's progress record, the sink's rows per output (None when
        its report is gone) and the rows each output dropped as late (None: the query's
        total, under its own name); True when counted, False when its id already was."""
        batch = record.get("batchId")
        if not isinstance(batch, int):
            return False
        query = str(record.get("id"))
        last = self.totals["last_batch_id"].get(query)
        if last is not None and batch <= last:
            return False
        t = self.totals
        t["last_batch_id"][query] = batch
        t["batches"] += 1
        t["input_rows"] += records_read(record, self.input_topic)
        if late_rows is None:
            late_rows = {str(record.get("name")): record.get("rowsDroppedByWatermark") or 0}
        for counts, added in (("late_rows_dropped", late_rows), ("output_rows", rows_written)):
            for output, rows in (added or {}).items():
                t[counts][output] = t[counts].get(output, 0) + _count(rows)
        return True

    def save(self) -> Path:
        """Replace the file atomically (a scrape never reads half of it)."""
        return write_json(self.path, {**self.totals, "updated_at": time.time()})


def records_read(record: Mapping[str, Any], topic: str | None) -> int:
    """Records a batch read from `topic` (None: every topic): its sources' end offsets minus
    their start offsets.  A new query's first batch has no start offsets and read from the
    topic's beginning, taken as offset 0 (an overcount only when retention had already
    deleted the topic's oldest records)."""
    read = 0
    for source in record.get("sources") or []:
        end, start = source.get("endOffset"), source.get("startOffset") or {}
        if not isinstance(end, dict) or not isinstance(start, dict):
            continue
        for name, partitions in end.items():
            begun = start.get(name) or {}
            if topic not in (None, name) or not isinstance(partitions, dict):
                continue
            begun = begun if isinstance(begun, dict) else {}
            for partition, offset in partitions.items():
                read += max(0, int(offset) - int(begun.get(partition, 0)))
    return read


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _counts(value: Any) -> dict[str, int]:
    """A map of name -> count as read from a file (anything else: empty)."""
    return {str(k): _count(v) for k, v in value.items()} if isinstance(value, dict) else {}
