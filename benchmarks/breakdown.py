"""Where one micro-batch's time goes, per query.

Three sources, all read from outside the streaming code:

- the progress records (metrics/progress.jsonl): Spark's own phases of each trigger
  (latestOffset, queryPlanning, addBatch = the foreachBatch call, walCommit, commitOffsets)
  and each stateful operator's state store commit time;
- the driver's REST API (the Spark UI's /api/v1): every Spark job with its query and batch
  (Structured Streaming writes "<query>\\nid = ..\\nrunId = ..\\nbatch = N" into each job's
  description; Delta prefixes its own jobs with "Delta: " and names them, e.g. "Compute
  snapshot for version: 12");
- what is left of addBatch once the jobs are taken away: driver-side work outside any job
  (the Python callback, Delta's log listing and commit, the Kafka producer's flush).

Every latency run of `make bench` and `python -m benchmarks.at_rest` report it.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import requests

BATCH = re.compile(r"^batch = (\d+)(?:: (.*))?$")
PHASES = ("latestOffset", "queryPlanning", "addBatch", "walCommit", "commitOffsets")


def _epoch_ms(stamp: str) -> float:
    """The REST API's times: 2026-11-29T10:28:54.720GMT."""
    moment = datetime.strptime(stamp.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return moment.timestamp() * 1000


@dataclass(frozen=True)
class Job:
    query: str
    batch: int
    kind: str  # the sink's step ("Delta write"...), "batch", or "Delta: <its own step>"
    ms: float
    tasks: int


def parse_job(job: dict) -> Job | None:
    """A finished streaming job's query, batch and kind; None for any other job."""
    lines = (job.get("description") or "").splitlines()
    if len(lines) < 4 or "completionTime" not in job:
        return None
    found = BATCH.match(lines[3])
    if found is None:
        return None
    query = lines[0]
    # The sink names its steps (spark_jobs/sinks.py, job_name); Spark's own
    # call site for a job started from Python says nothing.
    name = job.get("name") or ""
    kind = "batch" if name.startswith("start at ") else (name or "unnamed")
    if query.startswith("Delta: "):
        query = query.removeprefix("Delta: ")
        # "Compute snapshot for version: 12" -> "Delta: compute snapshot"
        step = re.sub(r"[:\s]*\d+$", "", found.group(2) or "other").split(" for ")[0]
        kind = "Delta: " + step.lower()
    return Job(
        query=query,
        batch=int(found.group(1)),
        kind=kind,
        ms=_epoch_ms(job["completionTime"]) - _epoch_ms(job["submissionTime"]),
        tasks=int(job.get("numTasks") or 0),
    )


def fetch_jobs(ui_url: str, timeout: float = 30.0) -> list[Job]:
    """Every finished streaming job the driver still remembers (spark.ui.retainedJobs)."""
    apps = requests.get(f"{ui_url}/api/v1/applications", timeout=timeout).json()
    raw = requests.get(f"{ui_url}/api/v1/applications/{apps[0]['id']}/jobs", timeout=timeout).json()
    return [job for job in map(parse_job, raw) if job is not None]


@dataclass
class QueryBreakdown:
    """Means per batch that read input (a no-data batch is counted apart)."""

    query: str
    batches: int = 0
    no_data_batches: int = 0
    trigger_ms: float = 0.0
    phases_ms: dict[str, float] = field(default_factory=dict)
    state_commit_ms: float = 0.0
    jobs_per_batch: float = 0.0
    tasks_per_batch: float = 0.0
    jobs_ms: dict[str, float] = field(default_factory=dict)
    outside_jobs_ms: float = 0.0  # addBatch minus its jobs: the driver's own work
    # The pipeline's writes from the driver (its progress records' sinkMs): the Kafka
    # transaction and the Delta appends, side by side after the collect.
    driver_ms: dict[str, float] = field(default_factory=dict)


def _mean(values: list[float]) -> float:
    return round(statistics.fmean(values), 1) if values else 0.0


def breakdown(records: list[dict], jobs: list[Job]) -> list[QueryBreakdown]:
    """Per query: the mean batch, phase by phase and job kind by job kind.

    Only batches that appear in both sources are counted, so a batch whose jobs the driver
    has already forgotten does not make the jobs look cheaper than they are."""
    by_batch: dict[tuple[str, int], list[Job]] = defaultdict(list)
    for job in jobs:
        by_batch[(job.query, job.batch)].append(job)
    out = []
    records = [r for r in records if not r.get("query")]  # not the per-output copies
    for query in sorted({r["name"] for r in records}):
        mine = [r for r in records if r["name"] == query]
        counted = [r for r in mine if r["numInputRows"] and (query, r["batchId"]) in by_batch]
        result = QueryBreakdown(
            query=query,
            batches=len(counted),
            no_data_batches=sum(1 for r in mine if not r["numInputRows"]),
        )
        if counted:
            result.trigger_ms = _mean([r["durationMs"].get("triggerExecution", 0) for r in counted])
            result.phases_ms = {
                p: _mean([r["durationMs"].get(p, 0) for r in counted]) for p in PHASES
            }
            result.state_commit_ms = _mean(
                [sum(op.get("commitTimeMs") or 0 for op in r["stateOperators"]) for r in counted]
            )
            batch_jobs = [by_batch[(query, r["batchId"])] for r in counted]
            result.jobs_per_batch = _mean([len(js) for js in batch_jobs])
            result.tasks_per_batch = _mean([sum(j.tasks for j in js) for js in batch_jobs])
            kinds = sorted({j.kind for js in batch_jobs for j in js})
            result.jobs_ms = {
                k: _mean([sum(j.ms for j in js if j.kind == k) for js in batch_jobs]) for k in kinds
            }
            result.outside_jobs_ms = _mean(
                [
                    r["durationMs"].get("addBatch", 0) - sum(j.ms for j in js)
                    for r, js in zip(counted, batch_jobs, strict=True)
                ]
            )
            steps = sorted({k for r in counted for k in (r.get("sinkMs") or {})})
            result.driver_ms = {
                k: _mean([(r.get("sinkMs") or {}).get(k, 0) for r in counted])
                for k in steps
                if k != "collect_ms"  # the collect is the batch's job, counted above
            }
        out.append(result)
    return out


# The driver's steps of a pipeline batch (spark_jobs/sinks.py), as the table heads them; both
# run inside addBatch, after the collect job, and overlap each other.
DRIVER_STEPS = {
    "kafka_ms": "of which: Kafka transaction ms",
    "delta_ms": "of which: Delta appends ms",
}


def table(rows: list[QueryBreakdown]) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of the breakdown table, one row per query."""
    kinds = sorted({k for r in rows for k in r.jobs_ms})
    steps = sorted({k for r in rows for k in r.driver_ms})
    header = [
        "query",
        "batches",
        "trigger ms",
        *(f"{p} ms" for p in PHASES),
        "state commit ms",
        "jobs/batch",
        "tasks/batch",
        *(f"{k} ms" for k in kinds),
        "addBatch outside jobs ms",
        *(DRIVER_STEPS.get(k, k) for k in steps),
    ]
    cells = [
        [
            r.query,
            str(r.batches),
            f"{r.trigger_ms:.0f}",
            *(f"{r.phases_ms.get(p, 0):.0f}" for p in PHASES),
            f"{r.state_commit_ms:.0f}",
            f"{r.jobs_per_batch:.1f}",
            f"{r.tasks_per_batch:.0f}",
            *(f"{r.jobs_ms.get(k, 0):.0f}" for k in kinds),
            f"{r.outside_jobs_ms:.0f}",
            *(f"{r.driver_ms.get(k, 0):.0f}" for k in steps),
        ]
        for r in rows
    ]
    return header, cells
