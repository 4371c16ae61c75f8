"""What the streaming application's progress records say about a benchmark run: whether
its queries started and caught up, batch durations, state size, where trigger time goes."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.designs import epoch, kafka_offsets_read
from include.analytics import ANALYTIC_NAMES
from include.streaming.progress import read_progress

# The phases of a trigger Spark reports in a progress record's durationMs.
TIME_PARTS = ("latestOffset", "getBatch", "queryPlanning", "addBatch", "walCommit", "commitOffsets")


def started_queries(state: Path) -> set[str]:
    """The queries that have reported progress under an application's state directory."""
    return {r["name"] for r in read_progress(state / "metrics")}


def caught_up(state: Path, since: float, queries: Sequence[str] = ANALYTIC_NAMES) -> bool:
    """Every query has run a batch that began after `since` and found nothing new, or, for
    a query without a watermark (nothing left to close), that read to the latest offset:
    Spark reports an idle stateless query to onQueryIdle, with no progress record."""
    latest: dict[str, dict] = {}
    for record in read_progress(state / "metrics"):
        latest[record["name"]] = record

    def done(record: dict) -> bool:
        if record["numInputRows"] == 0:
            return True
        return record.get("watermark") is None and all(
            source.get("offsetsBehindLatest") == 0 for source in record.get("sources", [])
        )

    return all(
        name in latest and epoch(latest[name]["timestamp"]) > since and done(latest[name])
        for name in queries
    )


def read_up_to(state: Path, topic: str, count: int, queries: Sequence[str]) -> bool:
    """Every query has finished a batch that read `topic` up to `count` offsets in all
    (a query without a watermark, or in update mode, runs no batch once it has)."""
    latest: dict[str, int] = {}
    for record in read_progress(state / "metrics"):
        latest[record["name"]] = kafka_offsets_read(record, topic) or 0
    return all(latest.get(name, 0) >= count for name in queries)


def wait_for(done: Callable[[], bool], app: subprocess.Popen, timeout: float, what: str) -> None:
    """Poll `done` until it holds; fail if the application exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not done():
        if app.poll() is not None:
            raise RuntimeError(f"the streaming application exited {app.returncode} ({what})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(2)


def query_records(records: list[dict]) -> list[dict]:
    """The records of the streaming queries themselves, without the per-output copies the
    one-query pipeline adds (those name their query in ``query``)."""
    return [r for r in records if not r.get("query")]


def output_records(records: list[dict]) -> list[dict]:
    """One record per output and batch: the pipeline's per-output records when there are
    any (the six-query design's records are its outputs' already)."""
    return [r for r in records if r.get("query")] or records


def batch_durations(records: list[dict]) -> dict[str, float]:
    """Batch duration of batches that read input: p50 and max over every query."""
    durations = [r["batchDurationMs"] for r in query_records(records) if r["numInputRows"]]
    if not durations:
        return {"p50": 0, "max": 0, "batches": 0}
    return {
        "p50": round(statistics.median(durations)),
        "max": max(durations),
        "batches": len(durations),
    }


def state_size(records: list[dict]) -> dict[str, int]:
    """Peak state rows and memory per query (summed over its stateful operators), summed
    over the queries: what the application held at its fullest."""
    rows: dict[str, int] = {}
    memory: dict[str, int] = {}
    for record in output_records(records):
        operators = record.get("stateOperators") or []
        name = record["name"]
        rows[name] = max(rows.get(name, 0), sum(o["numRowsTotal"] for o in operators))
        memory[name] = max(memory.get(name, 0), sum(o["memoryUsedBytes"] for o in operators))
    return {
        "state_rows": sum(rows.values()),
        "state_memory_bytes": sum(memory.values()),
        "state_rows_by_query": rows,
    }


def time_breakdown(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per query, the share of its trigger time spent in each phase Spark reports
    (addBatch is the micro-batch's own jobs: read, parse, aggregate, write)."""
    shares = {}
    records = query_records(records)
    for name in sorted({r["name"] for r in records}):
        mine = [r["durationMs"] for r in records if r["name"] == name and r["numInputRows"]]
        total = sum(d.get("triggerExecution", 0) for d in mine)
        if total:
            shares[name] = {
                part: round(sum(d.get(part, 0) for d in mine) / total, 3) for part in TIME_PARTS
            } | {"trigger_seconds_total": round(total / 1000, 1)}
    return shares
