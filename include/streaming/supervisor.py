"""The supervisor's actions on the health verdicts (:mod:`include.streaming.health`): stop a
stalled or frozen driver at a batch boundary, start a new streaming run when a query is dead,
and the scheduled graceful restart's policy (which slots it runs, when it has nothing to do).
Airflow's DAGs (``supervisor``, ``streaming_restart``) call these; Airflow itself is asked
through the ``streaming_runs`` callable, so this module runs without it in the tests."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import psutil

from include.alerts.callbacks import supervisor_alert
from include.metrics import count_restart
from include.settings import Settings
from include.streaming.health import (
    Action,
    State,
    assess,
    input_end_offsets,
    not_started,
    starting,
    write_health,
)
from include.streaming.lease import Holder, live_holder, read_holder, stop_zombie

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- acting


def record_restart(settings: Settings, by: str, restarts: int = 1) -> None:
    """Count a driver restart in ``ecom_driver_restarts_total{by=...}`` (``restarts=0``:
    only make the counters exist); a failure to write is logged, never raised: counting
    must not stop a restart."""
    try:
        count_restart(settings, by, restarts)
    except OSError as exc:
        log.warning("could not count the driver restart: %s", exc)


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


def supervise_once(
    settings: Settings,
    queries: Iterable[str],
    bootstrap_servers: str,
    streaming_runs: Callable[[list[str] | None], int],
    wait_for_run_end: float = 120.0,
    scheduled_restart: bool = False,
    stopping: Callable[[], bool] = lambda: False,
) -> bool:
    """Assess every query, log each verdict, stop stalled drivers; True when the caller
    should start a new streaming run.  ``streaming_runs(states)`` counts the streaming
    DAG's runs in those states (None: all); Airflow knows, the supervisor asks.  While
    ``scheduled_restart`` (the restart DAG has an active run), a query without a driver is
    being restarted by it: starting, and left to it."""
    verdicts = assess(settings, queries, input_end_offsets(bootstrap_servers, settings))
    record_restart(settings, "supervisor", 0)  # the counters show at 0 before a restart
    if streaming_runs(None) == 0:
        write_health(settings, [not_started(v) for v in verdicts])
        log.info("the streaming DAG has never run: nothing to supervise or restart yet")
        return False
    active = streaming_runs(["running", "queued"])
    if active or scheduled_restart:
        verdicts = [starting(v, scheduled_restart) for v in verdicts]
    path = write_health(settings, verdicts)
    for verdict in verdicts:
        level = logging.INFO if verdict.state == State.RUNNING else logging.WARNING
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
            verdict.action = Action.STOP_AND_RESTART
    stopped: set[int] = set()
    for verdict in verdicts:
        if verdict.action != Action.STOP_AND_RESTART or verdict.driver_pid in stopped:
            continue
        holder = read_holder(settings.paths.pipeline_checkpoint)
        if holder is not None:
            log.warning("%s", stop_driver(holder, settings.supervisor.stop_timeout_seconds))
            stopped.add(holder.pid)
    acted = [v for v in verdicts if v.action in (Action.RESTART, Action.STOP_AND_RESTART)]
    if not acted:
        return False
    # The stopped driver's task has to notice and end its run before a new one may start.
    queried = [verdict.query for verdict in verdicts]
    outcome = wait_for_streaming_to_end(
        settings, queried, streaming_runs, stopped, wait_for_run_end, stopping=stopping
    )
    stops = f"stopped driver pid {', '.join(map(str, sorted(stopped)))}; " if stopped else ""
    if outcome != ENDED:
        log.warning("%s; not starting another", outcome)
        # A driver stopped is news; a restart another run already made (no stop) is not.
        if stopped:
            supervisor_alert(settings, acted, f"{stops}not starting another run: {outcome}")
        return False
    log.warning("starting a new streaming run")
    record_restart(settings, "supervisor")
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
    record_restart(settings, "restart_dag")
    return True


def live_drivers(settings: Settings, queries: Iterable[str]) -> dict[int, Holder]:
    """The drivers holding the pipeline's checkpoint now, by pid (one at most; `queries`, the
    outputs, all share it)."""
    holder = live_holder(settings.paths.pipeline_checkpoint)
    return {} if holder is None else {holder.pid: holder}


ENDED = "ended"


def wait_for_streaming_to_end(
    settings: Settings,
    queries: Iterable[str],
    streaming_runs: Callable[[list[str] | None], int],
    stopped: set[int],
    timeout: float,
    # A look is one small API call; every second of it is a second of recovery.
    interval: float = 1.0,
    stopping: Callable[[], bool] = lambda: False,
) -> str:
    """After stopping drivers, wait until Airflow has no active streaming run: ENDED.

    Otherwise, in words: a driver other than the stopped ones already holds the
    checkpoints (the supervisor and the scheduled restart both start runs, and the other
    one got there first: a second run would only be refused), or the timeout passed.
    """
    queries = list(queries)
    deadline = time.monotonic() + timeout
    while not stopping() and (active := streaming_runs(["running", "queued"])):
        newer = [h for pid, h in live_drivers(settings, queries).items() if pid not in stopped]
        if newer:
            return f"{newer[0].describe()} already holds the checkpoints (a newer streaming run)"
        if time.monotonic() >= deadline:
            return (
                f"the streaming DAG still has {active} active run(s) {timeout:.0f} s after its "
                "driver stopped (Airflow has to end it first: it may be waiting to retry)"
            )
        time.sleep(interval)
    if stopping():
        # A stopping scheduler still launches what it is given, then waits for it in vain.
        return "Airflow is stopping this task (a scheduler restart or `make down`)"
    return ENDED
