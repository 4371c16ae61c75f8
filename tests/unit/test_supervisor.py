"""The supervisor's judgement: running, lagging, stalled or dead, from crafted observations."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.settings import Settings
from include.settings.sections import SupervisorSettings
from include.streaming.health import Observation, State, classify, input_end_offsets
from include.streaming.lease import Holder
from include.streaming.progress import last_progress
from include.streaming.supervisor import missed_slot, started_after_slot

CFG = SupervisorSettings(lag_warning_records=1000, stall_seconds=300, frozen_after_seconds=30)
NOW = 1_800_000_000.0


def driver(heartbeat_age: float = 2) -> Holder:
    return Holder(4242, "here", "q", NOW - 3600, NOW - heartbeat_age)


def seen(driver_holder=None, lag: int | None = 0, since_commit: float | None = 5) -> Observation:
    lags = None if lag is None else {"t/0": lag}  # None: Kafka did not answer
    return Observation("revenue_by_category", driver_holder, 9, 9, since_commit, lags)


@pytest.mark.parametrize(
    "observation,state,action",
    [
        (seen(driver(), lag=10), State.RUNNING, "none"),
        (seen(driver(), lag=1000), State.RUNNING, "none"),  # at the threshold, not above
        (seen(driver(), lag=1001), State.LAGGING, "warn"),
        (seen(None, lag=0), State.DEAD, "restart"),
        (seen(driver(heartbeat_age=31), lag=0), State.STALLED, "stop_and_restart"),
        (seen(driver(), lag=5, since_commit=301), State.STALLED, "stop_and_restart"),
        # No input waiting: a quiet query is not stalled, however long since its commit.
        (seen(driver(), lag=0, since_commit=3600), State.RUNNING, "none"),
        (seen(driver(), lag=5, since_commit=None), State.RUNNING, "none"),
        # Kafka did not answer: a dead or frozen driver is still seen, nothing else judged.
        (seen(None, lag=None), State.DEAD, "restart"),
        (seen(driver(heartbeat_age=31), lag=None), State.STALLED, "stop_and_restart"),
        (seen(driver(), lag=None, since_commit=3600), State.RUNNING, "none"),
    ],
)
def test_classification(observation, state, action) -> None:
    verdict = classify(observation, CFG, now=NOW)
    assert (verdict.state, verdict.action) == (state, action), verdict.reason


def test_the_reason_is_a_sentence_with_the_numbers() -> None:
    verdict = classify(seen(driver(), lag=48_210, since_commit=360), CFG, now=NOW)
    assert verdict.reason == (
        "revenue_by_category stalled: no commit for 6 min, lag 48,210; restarting"
    )


def test_an_unknown_lag_is_said_so() -> None:
    verdict = classify(seen(driver(heartbeat_age=400), lag=None), CFG, now=NOW)
    assert verdict.total_lag is None
    assert verdict.reason == (
        "revenue_by_category stalled: driver pid 4242 sent no heartbeat for 7 min (frozen), "
        "lag unknown (Kafka did not answer); stopping it and restarting"
    )


def test_a_broker_that_does_not_answer_leaves_the_lag_unknown(caplog) -> None:
    """A real client against a port nobody listens on: no exception, so the supervisor's
    round goes on (it used to fail and wait out Airflow's 5-minute retry delay)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        servers = f"127.0.0.1:{probe.getsockname()[1]}"  # bound, never listening
        with caplog.at_level(logging.WARNING, logger="include.streaming.supervisor"):
            assert input_end_offsets(servers, Settings(), timeout_ms=1_000) is None
    assert f"Kafka at {servers} did not answer" in caplog.text


def test_last_progress_takes_the_newest_record_per_query(tmp_path: Path) -> None:
    lines = [
        {"name": "a", "batchId": 1},
        {"name": "b", "batchId": 7},
        {"name": "a", "batchId": 2},
    ]
    path = tmp_path / "progress.jsonl"
    path.write_text("{cut line\n" + "\n".join(json.dumps(x) for x in lines) + "\n")
    found = last_progress(tmp_path, ["a", "b", "c"])
    assert {k: v["batchId"] for k, v in found.items()} == {"a": 2, "b": 7}


def test_a_driver_heartbeat_age_uses_the_clock() -> None:
    assert driver(heartbeat_age=12).age(NOW) == pytest.approx(12)
    assert Holder(1, "h", "q", time.time(), time.time()).age() < 5


SLOT = datetime(2027, 1, 15, 3, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "run_type,started,skips",
    [
        # The past slot Airflow runs at once when the platform first starts at 14:05.
        ("scheduled", datetime(2027, 1, 15, 14, 5, tzinfo=UTC), True),
        ("scheduled", SLOT + timedelta(minutes=16), True),
        ("scheduled", SLOT + timedelta(minutes=15), False),  # late, within the grace
        ("scheduled", SLOT + timedelta(seconds=2), False),  # on time
        ("manual", SLOT + timedelta(days=3), False),  # a restart asked for now
    ],
)
def test_a_scheduled_restart_skips_a_slot_that_passed_before_it_started(
    run_type, started, skips
) -> None:
    why = missed_slot(run_type, SLOT, started)
    assert (why is not None) == skips
    if skips:
        assert "2027-01-15 03:30 UTC" in why and "skipping it" in why


def started_at(when: datetime) -> Holder:
    return Holder(4242, "here", "q", when.timestamp(), when.timestamp())


@pytest.mark.parametrize(
    "drivers,nothing_to_do",
    [
        # The platform (or a manual restart) started the driver a minute after the slot.
        ([started_at(SLOT + timedelta(minutes=1))], True),
        ([started_at(SLOT - timedelta(days=1))], False),  # running since yesterday: restart
        # One of two drivers predates the slot: it still needs the restart.
        ([started_at(SLOT + timedelta(minutes=1)), started_at(SLOT - timedelta(hours=1))], False),
        ([], False),  # nothing running is said elsewhere ("nothing to restart")
    ],
)
def test_a_restart_leaves_a_driver_started_after_its_slot(drivers, nothing_to_do) -> None:
    why = started_after_slot(SLOT, drivers)
    assert (why is not None) == nothing_to_do
    if nothing_to_do:
        assert "2027-01-15 03:30:00 UTC" in why and "pid 4242" in why
