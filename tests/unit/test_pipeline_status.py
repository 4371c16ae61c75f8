"""What `make status` and the health page call each query: the supervisor's fresh verdict,
or, when nobody is watching, what the driver leases show; never "dead" for a pipeline that
was stopped on purpose or never started."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.analytics import QUERIES
from include.settings import Settings
from include.streaming.health import State, Verdict, not_started, starting
from include.streaming.lease import Holder, lease_path
from include.streaming.progress import progress_path
from include.streaming.status import STOPPED, pipeline_status, status_table

NOW = 1_800_000_000.0
INTERVAL = 60  # the supervisor's interval: its record is stale after 3 * 60 + 60 s


@pytest.fixture
def settings(tmp_path: Path, monkeypatch) -> Settings:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ECOM_SUPERVISOR__INTERVAL_SECONDS", str(INTERVAL))
    made = Settings()
    made.paths.metrics_dir.mkdir(parents=True)
    return made


def record(settings: Settings, at: float, states: dict[str, str]) -> None:
    """A health.json as the supervisor writes it, with these states."""
    queries = [
        {
            "query": q,
            "state": state,
            "reason": f"{q} {state}: as judged",
            "action": "none",
            "total_lag": 1234,
            "driver_pid": 77,
            "metrics": {"at": "2027-01-15T08:00:00.000Z"},
        }
        for q, state in states.items()
    ]
    (settings.paths.metrics_dir / "health.json").write_text(
        json.dumps({"at": at, "queries": queries})
    )


def lease(settings: Settings, heartbeat: float, pid: int = 4242) -> None:
    """A driver lease file on the pipeline's checkpoint whose last heartbeat was at
    `heartbeat` (every output is a branch of that one query)."""
    checkpoint = settings.paths.pipeline_checkpoint
    checkpoint.mkdir(parents=True, exist_ok=True)
    holder = Holder(pid, "here", "pipeline", heartbeat - 600, heartbeat)
    lease_path(checkpoint).write_text(json.dumps(asdict(holder)))


def states(settings: Settings) -> dict[str, str]:
    return {q.query: q.state for q in pipeline_status(settings, NOW).queries}


def test_a_fresh_record_is_shown_as_the_supervisor_wrote_it(settings) -> None:
    written = dict.fromkeys(QUERIES, State.RUNNING) | {
        QUERIES[0]: State.DEAD,
        QUERIES[1]: State.STALLED,
    }
    record(settings, NOW - 4 * INTERVAL + 1, written)  # 239 s old: still fresh
    status = pipeline_status(settings, NOW)
    assert status.watched
    assert states(settings) == written
    assert [q.query for q in status.alarms] == [QUERIES[0], QUERIES[1]]
    assert status.queries[0].lag == 1234
    assert status.queries[0].last_batch == datetime(2027, 1, 15, 8, tzinfo=UTC)


def test_a_stale_record_is_no_alarm_a_beating_driver_runs_every_output(settings) -> None:
    # The supervisor's DAG was paused 10 minutes ago with every output dead: nobody is
    # watching, so "dead" would be a false alarm.  The driver still beats.
    record(settings, NOW - 600, dict.fromkeys(QUERIES, State.DEAD))
    lease(settings, heartbeat=NOW - 3)
    status = pipeline_status(settings, NOW)
    assert not status.watched and status.alarms == []
    assert states(settings) == dict.fromkeys(QUERIES, State.RUNNING)
    assert {q.driver_pid for q in status.queries} == {4242}
    assert "(is its DAG paused?)" in status.queries[0].reason


def test_a_stale_record_and_a_driver_gone_quiet_is_stopped_not_dead(settings) -> None:
    record(settings, NOW - 600, dict.fromkeys(QUERIES, State.DEAD))
    lease(settings, heartbeat=NOW - 120)  # a driver that died 2 minutes ago
    status = pipeline_status(settings, NOW)
    assert not status.watched and status.alarms == []
    assert states(settings) == dict.fromkeys(QUERIES, STOPPED)
    assert "stopped on purpose" in status.queries[1].reason


def test_no_record_at_all_is_stopped_not_dead(settings) -> None:
    status = pipeline_status(settings, NOW)
    assert status.checked_at is None and not status.watched
    assert states(settings) == dict.fromkeys(QUERIES, STOPPED)
    assert "has not judged yet" in status.queries[0].reason


def test_the_status_table_has_a_row_per_query_with_lag_and_batch_age(settings) -> None:
    record(settings, NOW - 5, dict.fromkeys(QUERIES, State.RUNNING))
    batch = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    rows = status_table(pipeline_status(settings, NOW), now=batch + 42)
    assert rows[0] == ("query", "state", "lag", "last batch", "why")
    assert [r[0] for r in rows[1:]] == list(QUERIES)
    assert rows[1][1:4] == (State.RUNNING, "1,234", "42 s ago")
    assert rows[1][4] == "as judged"


def verdict(state: str, action: str) -> Verdict:
    return Verdict("revenue_by_category", state, f"revenue_by_category {state}: x", action, 9, None)


def test_no_driver_before_the_first_streaming_run_is_not_started_and_not_restarted() -> None:
    made = not_started(verdict(State.DEAD, "restart"))
    assert (made.state, made.action) == (State.NOT_STARTED, "none")
    assert "never run" in made.reason
    kept = verdict(State.RUNNING, "none")
    assert not_started(kept) == kept


def test_no_driver_during_an_active_run_is_starting_and_keeps_its_guarded_restart() -> None:
    made = starting(verdict(State.DEAD, "restart"))
    assert (made.state, made.action) == (State.STARTING, "restart")
    stalled = verdict(State.STALLED, "stop_and_restart")
    assert starting(stalled) == stalled


def test_the_lease_heartbeat_age_decides_live_whatever_the_clock(settings) -> None:
    # Sanity of the fixture against the real clock: a heartbeat now is live.
    record(settings, time.time() - 3600, dict.fromkeys(QUERIES, State.DEAD))
    lease(settings, heartbeat=time.time())
    assert pipeline_status(settings).queries[2].state == State.RUNNING


def test_make_status_prints_each_query_and_names_the_alarms(settings, capsys) -> None:
    from include.runtime.cli import status

    record(
        settings,
        time.time() - 5,
        dict.fromkeys(QUERIES, State.RUNNING) | {QUERIES[3]: State.STALLED},
    )
    assert status(settings) == 1
    shown = capsys.readouterr().out
    table = shown.split("Streaming queries")[1].splitlines()[2 : 2 + len(QUERIES)]
    rows = {line.split()[0]: line.split()[1] for line in table}
    assert rows == dict.fromkeys(QUERIES, State.RUNNING) | {QUERIES[3]: State.STALLED}
    assert f"ALARM {QUERIES[3]} {State.STALLED}: as judged" in shown


def test_the_last_batch_is_the_newest_progress_record_not_the_supervisors_copy(settings) -> None:
    # The supervisor judged a minute ago; the driver has written batches since.
    record(settings, NOW - 60, dict.fromkeys(QUERIES, State.RUNNING))
    newest = datetime(2027, 1, 15, 8, 0, 55, tzinfo=UTC)
    lines = [
        {"name": QUERIES[0], "batchId": 7, "timestamp": "2027-01-15T08:00:45.000Z"},
        {"name": QUERIES[0], "batchId": 8, "timestamp": "2027-01-15T08:00:55.000Z"},
    ]
    progress_path(settings.paths.metrics_dir).write_text(
        "".join(json.dumps(r) + "\n" for r in lines)
    )
    status = pipeline_status(settings, NOW)
    assert status.queries[0].last_batch == newest
    # Without a progress record, the supervisor's copy (as recorded) is shown.
    assert status.queries[1].last_batch == datetime(2027, 1, 15, 8, tzinfo=UTC)
