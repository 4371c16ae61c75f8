"""Is each streaming query healthy?  Observe, classify, and (in the DAG) act.

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
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from include.alerts.callbacks import supervisor_alert
from include.jsonfile import read_json, write_json
from include.kafka.client import end_offsets
from include.settings import Settings, SupervisorSettings
from include.streaming import checkpoints
from include.streaming.lease import Holder, live_holder, read_holder, stop_zombie
from include.streaming.progress import last_progress

log = logging.getLogger(__name__)

RUNNING, LAGGING, STALLED, DEAD = "running", "lagging", "stalled", "dead"
# No driver because none was ever asked for: the streaming DAG has never run.
NOT_STARTED = "not-started"
# No driver yet, but a streaming run is active: its driver is on its way (or its task is
# about to end after a crash: then the run ends and the query is dead).
STARTING = "starting"
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
    state: str
    reason: str
    action: str  # none | warn | restart | stop_and_restart
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

    def verdict(state: str, reason: str, action: str) -> Verdict:
        return Verdict(obs.query, state, f"{obs.query} {state}: {reason}", action, lag, pid)

    if obs.driver is None:
        return verdict(
            DEAD, f"no driver holds its checkpoint, {lag_words(lag)}; restarting", "restart"
        )
    silent = obs.driver.age(now)
    if silent > cfg.frozen_after_seconds:
        return verdict(
            STALLED,
            f"driver pid {pid} sent no heartbeat for {_minutes(silent)} (frozen), "
            f"{lag_words(lag)}; stopping it and restarting",
            "stop_and_restart",
        )
    since = obs.seconds_since_commit
    # Without the lag (Kafka did not answer) only a dead or frozen driver can be judged.
    if lag is None:
        return verdict(RUNNING, f"driver pid {pid}, {lag_words(lag)}", "none")
    if lag > 0 and since is not None and since > cfg.stall_seconds:
        return verdict(
            STALLED,
            f"no commit for {_minutes(since)}, lag {lag:,}; restarting",
            "stop_and_restart",
        )
    if lag > cfg.lag_warning_records:
        return verdict(
            LAGGING,
            f"{lag:,} records behind the input topic (warning above {cfg.lag_warning_records:,})",
            "warn",
        )
    return verdict(RUNNING, f"driver pid {pid}, {lag_words(lag)}", "none")


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
    path = settings.pipeline_checkpoint
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
    progress = last_progress(settings.metrics_dir, queries)
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
    if verdict.state != DEAD:
        return verdict
    return replace(
        verdict,
        state=NOT_STARTED,
        reason=f"{verdict.query} {NOT_STARTED}: the streaming DAG has never run; trigger it "
        f"to start the queries ({lag_words(verdict.total_lag)})",
        action="none",
    )


def starting(verdict: Verdict, scheduled_restart: bool = False) -> Verdict:
    """A dead verdict is "starting" while a streaming run is active: its driver has not taken
    the checkpoint yet.  The action stays a restart, which waits for that run to end first
    and is dropped when a driver appears (:func:`wait_for_streaming_to_end`).  During a
    scheduled restart the restart DAG starts the new run: no action here (two restarters
    would race, and the operator would be alerted about a planned restart)."""
    if verdict.state != DEAD:
        return verdict
    if scheduled_restart:
        return replace(
            verdict,
            state=STARTING,
            reason=f"{verdict.query} {STARTING}: the scheduled restart (streaming_restart) is "
            f"replacing its driver, {lag_words(verdict.total_lag)}",
            action="none",
        )
    return replace(
        verdict,
        state=STARTING,
        reason=f"{verdict.query} {STARTING}: a streaming run is active but no driver holds "
        f"the checkpoint yet, {lag_words(verdict.total_lag)}; restarting if that run ends "
        "without one",
    )


def write_health(settings: Settings, verdicts: list[Verdict]) -> Path:
    """The record the health view reads: state/metrics/health.json (replaced atomically)."""
    record = {"at": time.time(), "queries": [asdict(v) for v in verdicts]}
    return write_json(settings.metrics_dir / HEALTH_FILE, record)


def read_health(settings: Settings) -> tuple[datetime | None, dict[str, dict[str, Any]]]:
    """When the supervisor last judged the queries (None: never) and its verdict per query,
    as :func:`write_health` recorded them."""
    record = read_json(settings.metrics_dir / HEALTH_FILE, {})
    at = record.get("at")
    checked = datetime.fromtimestamp(at, UTC) if isinstance(at, (int, float)) else None
    return checked, {q["query"]: q for q in record.get("queries", []) if "query" in q}


# ---------------------------------------------------------------- acting


def stop_driver(holder: Holder, timeout: float) -> str:
    """Stop a driver at a batch boundary (SIGTERM; SIGCONT wakes a frozen one so it can
    obey); SIGKILL only after `timeout`.  Returns what happened, in words."""
    try:
        proc = psutil.Process(holder.pid)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
    except psutil.NoSuchProcess:
        return f"driver pid {holder.pid} had already exited"
    try:
        proc.wait(timeout)
        return f"driver pid {holder.pid} stopped at a batch boundary"
    except psutil.TimeoutExpired:
        killed = stop_zombie(holder)
        return (
            f"driver pid {holder.pid} did not stop within {timeout:.0f} s; "
            f"hard-killed pids {', '.join(map(str, killed))}"
        )


# ---------------------------------------------------------------- one supervisor round


def input_end_offsets(
    bootstrap_servers: str, settings: Settings
) -> dict[str, dict[str, int]] | None:
    """The input topic's end offsets; None when Kafka does not answer.  A broker restart must
    not blind the supervisor: a failed round waits out Airflow's retry delay, minutes in
    which a frozen or dead driver goes unseen, while judging those needs no broker."""
    from kafka.errors import KafkaError

    try:
        # 10 s, not the client's 30: the round's other judgements wait for this one.
        return end_offsets(
            bootstrap_servers, settings.kafka.input_topic, bootstrap_timeout_ms=10_000
        )
    except KafkaError as error:
        log.warning(
            "Kafka at %s did not answer (%s): judging the drivers without their lag this round",
            bootstrap_servers,
            error,
        )
        return None


def supervise_once(
    settings: Settings,
    queries: Iterable[str],
    bootstrap_servers: str,
    streaming_runs: Callable[[list[str] | None], int],
    wait_for_run_end: float = 120.0,
    scheduled_restart: bool = False,
) -> bool:
    """Assess every query, log each verdict, stop stalled drivers; True when the caller
    should start a new streaming run.  ``streaming_runs(states)`` counts the streaming
    DAG's runs in those states (None: all); Airflow knows, the supervisor asks.  While
    ``scheduled_restart`` (the restart DAG has an active run), a query without a driver is
    being restarted by it: starting, and left to it."""
    verdicts = assess(settings, queries, input_end_offsets(bootstrap_servers, settings))
    if streaming_runs(None) == 0:
        write_health(settings, [not_started(v) for v in verdicts])
        log.info("the streaming DAG has never run: nothing to supervise or restart yet")
        return False
    active = streaming_runs(["running", "queued"])
    if active or scheduled_restart:
        verdicts = [starting(v, scheduled_restart) for v in verdicts]
    path = write_health(settings, verdicts)
    for verdict in verdicts:
        level = logging.INFO if verdict.state == RUNNING else logging.WARNING
        log.log(level, "%s", verdict.reason)
    log.info("health record written to %s", path)

    # A driver no active Airflow run accounts for (Airflow marked its task failed while it
    # kept running): stop it before a new launch, or that launch would be refused.
    zombies = not active
    for verdict in verdicts:
        if zombies and verdict.driver_pid is not None:
            log.warning(
                "%s: driver pid %d runs without an active streaming run in Airflow (a "
                "zombie); stopping it before a new launch",
                verdict.query,
                verdict.driver_pid,
            )
            verdict.action = "stop_and_restart"
    stopped: set[int] = set()
    for verdict in verdicts:
        if verdict.action != "stop_and_restart" or verdict.driver_pid in stopped:
            continue
        holder = read_holder(settings.pipeline_checkpoint)
        if holder is not None:
            log.warning("%s", stop_driver(holder, settings.supervisor.stop_timeout_seconds))
            stopped.add(holder.pid)
    acted = [v for v in verdicts if v.action in ("restart", "stop_and_restart")]
    if not acted:
        return False
    # The stopped driver's task has to notice and end its run before a new one may start.
    queried = [verdict.query for verdict in verdicts]
    outcome = wait_for_streaming_to_end(
        settings, queried, streaming_runs, stopped, wait_for_run_end
    )
    stops = f"stopped driver pid {', '.join(map(str, sorted(stopped)))}; " if stopped else ""
    if outcome != ENDED:
        log.warning("%s; not starting another", outcome)
        # A driver stopped is news; a restart another run already made (no stop) is not.
        if stopped:
            supervisor_alert(settings, acted, f"{stops}not starting another run: {outcome}")
        return False
    log.warning("starting a new streaming run")
    supervisor_alert(settings, acted, f"{stops}a new streaming run is starting")
    return True


# A scheduled restart this late is a slot that passed while nobody ran it: the one Airflow
# creates at once when the DAG first appears (catch-up off still runs the latest past slot),
# or one missed while Airflow was down.  Restarting then would interrupt a driver that has
# just started, so the run skips it; the next slot restarts on time.
RESTART_GRACE = timedelta(minutes=15)


def missed_slot(run_type: str, slot: datetime, started: datetime) -> str | None:
    """Why a scheduled restart run skips its slot (None: it restarts): it started more
    than :data:`RESTART_GRACE` after its slot.  Manual runs always restart."""
    if run_type != "scheduled" or started - slot <= RESTART_GRACE:
        return None
    return (
        f"the scheduled restart slot {slot:%Y-%m-%d %H:%M} UTC passed "
        f"{(started - slot).total_seconds() / 60:.0f} min before this run started (the "
        "platform just started, or Airflow was down); skipping it, the next slot restarts"
    )


def started_after_slot(slot: datetime, holders: Iterable[Holder]) -> str | None:
    """Why a restart for `slot` has nothing to do (None: it restarts): every running driver
    started after the slot, so it already runs the code and config a restart would load
    (the platform, or a manual restart, started it since)."""
    holders = list(holders)
    if not holders or any(h.started < slot.timestamp() for h in holders):
        return None
    return (
        f"the running driver started after the restart slot {slot:%Y-%m-%d %H:%M:%S} UTC "
        f"({'; '.join(h.describe() for h in holders)}): nothing to restart"
    )


def restart_gracefully(
    settings: Settings,
    queries: Iterable[str],
    streaming_runs: Callable[[list[str] | None], int],
    wait_for_run_end: float = 300.0,
    slot: datetime | None = None,
) -> bool:
    """The scheduled restart: stop the running driver at a batch boundary (a hard kill only
    after the stop timeout, logged), wait for its Airflow run to end; True when a new run
    should be started (False: nothing was running, the driver started after `slot`, another
    run already replaced the driver, or the old run did not end)."""
    queries = list(queries)
    holders = live_drivers(settings, queries)
    if not holders:
        log.info("no streaming driver is running: nothing to restart")
        return False
    if slot is not None and (fresh := started_after_slot(slot, holders.values())):
        log.info("%s", fresh)
        return False
    for holder in holders.values():
        log.info("scheduled restart: asking %s to stop", holder.describe())
        log.info("%s", stop_driver(holder, settings.supervisor.stop_timeout_seconds))
    outcome = wait_for_streaming_to_end(
        settings, queries, streaming_runs, set(holders), wait_for_run_end
    )
    if outcome != ENDED:
        log.warning("%s; not starting another", outcome)
        return False
    log.info("starting the streaming DAG again")
    return True


def live_drivers(settings: Settings, queries: Iterable[str]) -> dict[int, Holder]:
    """The drivers holding the pipeline's checkpoint now, by pid (one at most; `queries`, the
    outputs, all share it)."""
    holder = live_holder(settings.pipeline_checkpoint)
    return {} if holder is None else {holder.pid: holder}


ENDED = "ended"


def wait_for_streaming_to_end(
    settings: Settings,
    queries: Iterable[str],
    streaming_runs: Callable[[list[str] | None], int],
    stopped: set[int],
    timeout: float,
    interval: float = 5.0,
) -> str:
    """After stopping drivers, wait until Airflow has no active streaming run: ENDED.

    Otherwise, in words: a driver other than the stopped ones already holds the
    checkpoints (the supervisor and the scheduled restart both start runs, and the other
    one got there first: a second run would only be refused), or the timeout passed.
    """
    queries = list(queries)
    deadline = time.monotonic() + timeout
    while active := streaming_runs(["running", "queued"]):
        newer = [h for pid, h in live_drivers(settings, queries).items() if pid not in stopped]
        if newer:
            return f"{newer[0].describe()} already holds the checkpoints (a newer streaming run)"
        if time.monotonic() >= deadline:
            return (
                f"the streaming DAG still has {active} active run(s) {timeout:.0f} s after its "
                "driver stopped (Airflow has to end it first: it may be waiting to retry)"
            )
        time.sleep(interval)
    return ENDED
