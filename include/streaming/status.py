"""What each streaming query is doing now, as an operator should read it.

The supervisor's record (``health.json``) says what it judged on its last round.  That is
the truth only while the supervisor keeps looking: when its DAG is paused (the way to stop
streaming on purpose) or Airflow is down, the record goes stale and would go on calling a
query "running" after its driver stopped, or "dead" long after everybody knew.  So a stale
record is read together with the one thing that needs no supervisor, the driver lease's
heartbeat:

* a fresh record: the supervisor's verdict, as it wrote it;
* a stale (or missing) record and a beating driver: ``running``, unwatched;
* a stale (or missing) record and no driver: ``stopped`` (paused on purpose, or never
  started: nothing is wrong that anybody is being asked to fix).

Only ``dead`` and ``stalled`` on a fresh record are alarms (``make status`` exits 1).
Used by ``make status`` and the health page, so both say the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from include.analytics import QUERIES
from include.contract import parse_utc
from include.settings import Settings
from include.streaming.health import State, read_health
from include.streaming.lease import STALE_AFTER_SECONDS, read_holder
from include.streaming.progress import last_progress

STOPPED = "stopped"
ALARMS = frozenset({State.DEAD, State.STALLED})
# The supervisor's record is stale after this many of its intervals without a new one.
STALE_AFTER_ROUNDS = 3


@dataclass(frozen=True)
class QueryStatus:
    """One query as the operator should see it: its state, why, its lag and last batch."""

    query: str
    state: str
    reason: str
    lag: int | None
    last_batch: datetime | None
    driver_pid: int | None

    @property
    def alarm(self) -> bool:
        """True when somebody has to act (or the supervisor is already acting)."""
        return self.state in ALARMS


@dataclass(frozen=True)
class PipelineStatus:
    """Every query's status and when the supervisor last judged (None: never)."""

    checked_at: datetime | None
    watched: bool  # the supervisor's record is fresh
    queries: list[QueryStatus]

    @property
    def alarms(self) -> list[QueryStatus]:
        """The queries that are dead or stalled."""
        return [q for q in self.queries if q.alarm]


def stale_after_seconds(settings: Settings) -> float:
    """How old the supervisor's record may be before nobody is watching."""
    return STALE_AFTER_ROUNDS * settings.supervisor.interval_seconds + 60


def live_driver_pid(settings: Settings, query: str, now: float) -> int | None:
    """The pid of the driver whose lease heartbeat is fresh (cheap: reads the lease file and
    takes no lock, unlike :func:`include.streaming.lease.live_holder`).  Every output `query`
    is a branch of the one streaming query: its driver holds the pipeline's checkpoint."""
    holder = read_holder(settings.paths.pipeline_checkpoint)
    if holder is None or holder.age(now) > STALE_AFTER_SECONDS:
        return None
    return holder.pid


def pipeline_status(
    settings: Settings,
    now: float | None = None,
    progress: dict[str, dict[str, Any]] | None = None,
) -> PipelineStatus:
    """Every query's status from the supervisor's record and the driver leases; `progress`
    is the newest record per query when the caller has read it already."""
    now = now or time.time()
    checked, verdicts = read_health(settings)
    # The newest batch, not the one the supervisor saw (up to its interval older).
    if progress is None:
        progress = last_progress(settings.paths.metrics_dir, QUERIES)
    watched = checked is not None and now - checked.timestamp() <= stale_after_seconds(settings)
    since = f"since {checked:%Y-%m-%d %H:%M:%S} UTC" if checked else "yet"
    found = []
    for query in QUERIES:
        verdict = verdicts.get(query) or {}
        metrics = verdict.get("metrics") or {}
        last_batch = parse_utc((progress.get(query) or {}).get("timestamp") or metrics.get("at"))
        lag = verdict.get("total_lag")
        if watched and verdict:
            state, reason, pid = verdict["state"], verdict["reason"], verdict.get("driver_pid")
        elif (pid := live_driver_pid(settings, query, now)) is not None:
            state = State.RUNNING
            reason = (
                f"{query} {State.RUNNING}: driver pid {pid} is alive; the supervisor has not "
                f"judged {since} (is its DAG paused?)"
            )
        else:
            state = STOPPED
            reason = (
                f"{query} {STOPPED}: no driver, and the supervisor has not judged {since}: "
                "stopped on purpose (supervisor paused) or not started; to run it, trigger "
                "the streaming DAG and unpause the supervisor"
            )
        found.append(QueryStatus(query, state, reason, lag, last_batch, pid))
    return PipelineStatus(checked, watched, found)


def status_table(status: PipelineStatus, now: float | None = None) -> list[tuple[str, ...]]:
    """The rows ``make status`` prints: a header, then query, state, lag, last batch (age)
    and the reason."""
    now_at = datetime.fromtimestamp(now or time.time(), UTC)
    rows: list[tuple[str, ...]] = [("query", "state", "lag", "last batch", "why")]
    for q in status.queries:
        age = (
            f"{(now_at - q.last_batch).total_seconds():.0f} s ago"
            if q.last_batch is not None
            else "-"
        )
        lag = f"{q.lag:,}" if q.lag is not None else "-"
        rows.append((q.query, q.state, lag, age, q.reason.split(": ", 1)[-1]))
    return rows
