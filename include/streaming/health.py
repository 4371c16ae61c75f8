"""Is each streaming query healthy?  Observe and judge; :mod:`include.streaming.supervisor`
acts on the verdicts.

Airflow sees a long-running task as "running" whether its driver works, froze, or fell an
hour behind.  The supervisor looks at what the query itself leaves behind:

* the checkpoint: last planned and last committed batch, and the source offsets of the last
  commit (the Spark Kafka source commits nothing to consumer groups, so lag is computed
  here, against Kafka's end offsets);
* the driver lease: which process holds the checkpoint and whether its heartbeat is fresh;
* the listener's progress records: rates, batch durations, state rows.

Each query is then ``running``, ``lagging`` (lag above a threshold: warn), ``stalled`` (no
commit for a while although there is input, or a frozen driver: stop, then restart) or
``dead`` (no driver: restart).  Thresholds: ``[supervisor]`` in config/platform.toml.
Without a driver, what Airflow knows tells the rest apart: ``not-started`` while the
streaming DAG has never run (nothing to restart), ``starting`` while a streaming run is
active but its driver holds no checkpoint yet (restarted only if that run ends without one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from include.jsonfile import read_json, write_json
from include.kafka.client import end_offsets
from include.settings import Settings
from include.settings.sections import SupervisorSettings
from include.streaming import checkpoints
from include.streaming.lease import Holder, live_holder
from include.streaming.progress import last_progress

log = logging.getLogger(__name__)


class State(StrEnum):
    """A query's health, as the health page, `make status` and the metrics show it."""

    RUNNING = "running"
    LAGGING = "lagging"  # lag above [supervisor] lag_warning_records: warn
    STALLED = "stalled"  # no commit although there is input, or a frozen driver
    DEAD = "dead"  # no driver holds the checkpoint
    # No driver because none was ever asked for: the streaming DAG has never run.
    NOT_STARTED = "not-started"
    # No driver yet, but a streaming run is active: its driver is on its way (or its task is
    # about to end after a crash: then the run ends and the query is dead).
    STARTING = "starting"


class Action(StrEnum):
    """What the supervisor does about a verdict (:mod:`include.streaming.supervisor`)."""

    NONE = "none"
    WARN = "warn"
    RESTART = "restart"  # start a new streaming run
    STOP_AND_RESTART = "stop_and_restart"  # stop the driver first, then start a new run


HEALTH_FILE = "health.json"


@dataclass
class Observation:
    """Everything measured about one query; no judgement yet."""

    query: str
    driver: Holder | None  # the lease holder, when a live process holds the lock
    planned: int | None
    committed: int | None
    seconds_since_commit: float | None
    # None: Kafka's end offsets could not be read this round (the broker did not answer).
    lag: dict[str, int] | None = field(default_factory=dict)
    progress: dict[str, Any] | None = None
    checkpoint_problems: list[str] = field(default_factory=list)

    @property
    def total_lag(self) -> int | None:
        """Records behind Kafka's end offsets, over every partition (None: unknown)."""
        return None if self.lag is None else sum(self.lag.values())


def lag_words(lag: int | None) -> str:
    """The lag in a verdict's sentence."""
    return "lag unknown (Kafka did not answer)" if lag is None else f"lag {lag:,}"


@dataclass
class Verdict:
    """The judgement of one query: its state, the reason in words, the action to take, and
    the figures the health record keeps."""

    query: str
    state: State
    reason: str
    action: Action
    total_lag: int | None
    driver_pid: int | None
    metrics: dict[str, Any] = field(default_factory=dict)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def classify(obs: Observation, cfg: SupervisorSettings, now: float | None = None) -> Verdict:
    """Judge one query from its observation; the reason is a sentence for the task log."""
    now = now or time.time()
    lag = obs.total_lag
    pid = obs.driver.pid if obs.driver else None

    def verdict(state: State, reason: str, action: Action) -> Verdict:
        return Verdict(obs.query, state, f"{obs.query} {state}: {reason}", action, lag, pid)

    if obs.driver is None:
        return verdict(
            State.DEAD,
            f"no driver holds its checkpoint, {lag_words(lag)}; restarting",
            Action.RESTART,
        )
    silent = obs.driver.age(now)
    if silent > cfg.frozen_after_seconds:
        return verdict(
            State.STALLED,
            f"driver pid {pid} sent no heartbeat for {_minutes(silent)} (frozen), "
            f"{lag_words(lag)}; stopping it and restarting",
            Action.STOP_AND_RESTART,
        )
    since = obs.seconds_since_commit
    # Without the lag (Kafka did not answer) only a dead or frozen driver can be judged.
    if lag is None:
        return verdict(State.RUNNING, f"driver pid {pid}, {lag_words(lag)}", Action.NONE)
    if lag > 0 and since is not None and since > cfg.stall_seconds:
        return verdict(
            State.STALLED,
            f"no commit for {_minutes(since)}, lag {lag:,}; restarting",
            Action.STOP_AND_RESTART,
        )
    if lag > cfg.lag_warning_records:
        return verdict(
            State.LAGGING,
            f"{lag:,} records behind the input topic (warning above {cfg.lag_warning_records:,})",
            Action.WARN,
        )
    return verdict(State.RUNNING, f"driver pid {pid}, {lag_words(lag)}", Action.NONE)


# ---------------------------------------------------------------- observing


def observe(
    settings: Settings,
    query: str,
    end_offsets: dict[str, dict[str, int]] | None,
    progress: dict[str, Any] | None,
    now: float | None = None,
) -> Observation:
    """Measure one query: its checkpoint, the live lease holder, the seconds since its last
    commit (since the driver started when nothing is committed; None when neither), its lag
    behind `end_offsets` (None when they are unknown), and its last progress record."""
    now = now or time.time()
    # Every output is a branch of the one query: its checkpoint, lease and lag are theirs.
    path = settings.paths.pipeline_checkpoint
    report = checkpoints.inspect(path)
    holder = live_holder(path)
    since = None
    if report.last_committed is not None:
        since = now - (path / "commits" / str(report.last_committed)).stat().st_mtime
    elif holder is not None:
        since = now - holder.started  # nothing committed since the driver started
    return Observation(
        query=query,
        driver=holder,
        planned=report.last_planned,
        committed=report.last_committed,
        seconds_since_commit=since,
        lag=None if end_offsets is None else checkpoints.lag(report, end_offsets),
        progress=progress,
        checkpoint_problems=report.problems,
    )


def progress_metrics(record: dict[str, Any] | None) -> dict[str, Any]:
    """The figures of a progress record that the health record keeps ({} without a record)."""
    if not record:
        return {}
    return {
        "batch": record.get("batchId"),
        "at": record.get("timestamp"),
        "input_rows_per_second": record.get("inputRowsPerSecond"),
        "processed_rows_per_second": record.get("processedRowsPerSecond"),
        "batch_duration_ms": record.get("batchDurationMs"),
        "state_rows": record.get("stateRowsTotal"),
        "dropped_by_watermark": record.get("rowsDroppedByWatermark"),
    }


def assess(
    settings: Settings, queries: Iterable[str], end_offsets: dict[str, dict[str, int]] | None
) -> list[Verdict]:
    """Observe and classify every query at one moment; each verdict carries its figures."""
    now = time.time()
    queries = list(queries)
    progress = last_progress(settings.paths.metrics_dir, queries)
    verdicts = []
    for query in queries:
        obs = observe(settings, query, end_offsets, progress.get(query), now)
        verdict = classify(obs, settings.supervisor, now)
        verdict.metrics = {
            **progress_metrics(obs.progress),
            "lag_by_partition": obs.lag,
            "planned": obs.planned,
            "committed": obs.committed,
            "seconds_since_commit": obs.seconds_since_commit,
            "checkpoint_problems": obs.checkpoint_problems,
        }
        verdicts.append(verdict)
    return verdicts


def not_started(verdict: Verdict) -> Verdict:
    """A dead verdict is "not started" while the streaming DAG has never run: nobody asked
    for a driver, so there is nothing to restart (a live driver keeps its verdict)."""
    if verdict.state != State.DEAD:
        return verdict
    return replace(
        verdict,
        state=State.NOT_STARTED,
        reason=f"{verdict.query} {State.NOT_STARTED}: the streaming DAG has never run; trigger it "
        f"to start the queries ({lag_words(verdict.total_lag)})",
        action=Action.NONE,
    )


def starting(verdict: Verdict, scheduled_restart: bool = False) -> Verdict:
    """A dead verdict is "starting" while a streaming run is active: its driver has not taken
    the checkpoint yet.  The action stays a restart, which waits for that run to end first
    and is dropped when a driver appears (:func:`wait_for_streaming_to_end`).  During a
    scheduled restart the restart DAG starts the new run: no action here (two restarters
    would race, and the operator would be alerted about a planned restart)."""
    if verdict.state != State.DEAD:
        return verdict
    if scheduled_restart:
        return replace(
            verdict,
            state=State.STARTING,
            reason=f"{verdict.query} {State.STARTING}: the scheduled restart (streaming_restart) "
            f"is replacing its driver, {lag_words(verdict.total_lag)}",
            action=Action.NONE,
        )
    return replace(
        verdict,
        state=State.STARTING,
        reason=f"{verdict.query} {State.STARTING}: a streaming run is active but no driver holds "
        f"the checkpoint yet, {lag_words(verdict.total_lag)}; restarting if that run ends "
        "without one",
    )


def write_health(settings: Settings, verdicts: list[Verdict]) -> Path:
    """The record the health view reads: state/metrics/health.json (replaced atomically)."""
    record = {"at": time.time(), "queries": [asdict(v) for v in verdicts]}
    return write_json(settings.paths.metrics_dir / HEALTH_FILE, record)


def read_health(settings: Settings) -> tuple[datetime | None, dict[str, dict[str, Any]]]:
    """When the supervisor last judged the queries (None: never) and its verdict per query,
    as :func:`write_health` recorded them."""
    record = read_json(settings.paths.metrics_dir / HEALTH_FILE, {})
    at = record.get("at")
    checked = datetime.fromtimestamp(at, UTC) if isinstance(at, (int, float)) else None
    return checked, {q["query"]: q for q in record.get("queries", []) if "query" in q}


def input_end_offsets(
    bootstrap_servers: str, settings: Settings, timeout_ms: int = 10_000
) -> dict[str, dict[str, int]] | None:
    """The input topic's end offsets; None when Kafka does not answer.  A broker restart must
    not blind the supervisor: a failed round waits out Airflow's retry delay, minutes in
    which a frozen or dead driver goes unseen, while judging those needs no broker."""
    from kafka.errors import KafkaError

    try:
        # 10 s, not the client's 30: the round's other judgements wait for this one.
        return end_offsets(
            bootstrap_servers, settings.kafka.input_topic, bootstrap_timeout_ms=timeout_ms
        )
    except KafkaError as error:
        log.warning(
            "Kafka at %s did not answer (%s): judging the drivers without their lag this round",
            bootstrap_servers,
            error,
        )
        return None
