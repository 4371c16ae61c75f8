"""Idle time is time too: when the producer stops, the last windows and sessions still close.

Short windows here (IDLE_ANALYTICS) so that every window and session of the data closes
within half a minute of silence; the rule is the same at the platform's defaults.

1. A state dir and topics of its own; events whose times span the last EVENT_SPAN up to
   now, sent at once, then nothing (the producer stopped).
2. Before ``idle_close_seconds`` of silence nothing moves event time: the windows that end
   within one watermark delay of the newest event are still open.
3. After it, every window the rule closes (ends at most T + silence - watermark) is in its
   table and in its topic within IDLE_SLACK seconds of the moment the rule closed it, and
   once the silence passes the horizon every row of every analytic equals the oracle, with
   no event newer than the data.
4. The same after a kill -9 of the driver during the silence that follows new events (from
   now on: the rule has moved event time on): a new driver comes back to a quiet input and
   closes what is left.
5. An event older than the moved watermark (time T, sent after the close) is late: counted
   in rowsDroppedByWatermark, changing no table.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.analytics import ANALYTICS
from include.generators import EventGenerator
from include.kafka.client import read_to_end
from include.kafka.topics import provision
from include.streaming.progress import read_progress
from tests.conftest import poll
from tests.integration.conftest import isolated_settings
from tests.integration.dataset import ORACLES, emitted, expected_of, normalise, send, table_rows
from tests.integration.streaming import launch

pytestmark = pytest.mark.integration

IDLE_ANALYTICS = {
    "WATERMARK_SECONDS": "5",
    "REVENUE_WINDOW_SECONDS": "10",
    "REVENUE_SLIDE_SECONDS": "5",
    "HIGH_VALUE_WINDOW_SECONDS": "15",
    "HIGH_VALUE_SLIDE_SECONDS": "5",
    "FUNNEL_WINDOW_SECONDS": "15",
    "FUNNEL_SLIDE_SECONDS": "5",
    "SESSION_GAP_SECONDS": "10",
    "ATTRIBUTION_SECONDS": "10",
    "IDLE_CLOSE_SECONDS": "8",
    "IDLE_TICK_SECONDS": "1",
}
EVENT_SPAN = timedelta(seconds=90)
EVENTS = 600
# A window the rule closes is visible this long after the rule closed it, at most: the
# control record's batch, the batch that publishes, on a shared CI machine.
IDLE_SLACK = 25.0
APP_ARGS = ("--trigger-seconds", "1")


@pytest.fixture(scope="module")
def idle_settings(kafka, platform_env, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in IDLE_ANALYTICS.items():
            mp.setenv(f"ECOM_ANALYTICS__{key}", value)
        with isolated_settings(tmp_path_factory, "idle") as settings:
            provision(settings)
            yield settings


def recent_events(end: datetime, seed: int) -> list[dict]:
    """EVENTS platform events whose times run up to `end` (visits of few users, so every
    analytic has rows)."""
    step = EVENT_SPAN / EVENTS
    return list(
        EventGenerator(seed=seed, users=40, products=10).stream(end - EVENT_SPAN, step, EVENTS)
    )


def newest(events: list[dict]) -> datetime:
    return max(datetime.fromisoformat(e["timestamp"]) for e in events)


def all_rows(settings, events) -> dict[str, pd.DataFrame]:
    """Every analytic's oracle rows, all final (the rule closes everything in the end)."""
    return {a: normalise(expected_of(a, events, settings), ORACLES[a][1]) for a in ORACLES}


def closed_by(settings, events, watermark: datetime) -> dict[str, pd.DataFrame]:
    """The oracle's rows final once the watermark reaches `watermark`."""
    return {
        a: normalise(
            emitted(a, expected_of(a, events, settings), watermark, settings), ORACLES[a][1]
        )
        for a in ORACLES
    }


def wait_for(settings, proc, log, wanted: dict[str, pd.DataFrame], timeout: float) -> float:
    """Poll until every table holds at least the wanted rows; the moment they did."""

    def fetch():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        return {a: table_rows(a, settings, wanted[a].columns) for a in wanted}

    poll(
        fetch,
        lambda got: all(len(got[a]) >= len(wanted[a]) for a in wanted),
        "the rows the idle rule closes",
        timeout=timeout,
        interval=1,
    )
    return time.time()


def assert_tables_equal(settings, wanted: dict[str, pd.DataFrame]) -> None:
    for analytic, expected in wanted.items():
        got = table_rows(analytic, settings, expected.columns)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=analytic)


def assert_topics_hold(settings, wanted: dict[str, pd.DataFrame]) -> None:
    """Each output topic (read_committed) has exactly as many records as its table rows."""
    for analytic, expected in wanted.items():
        records = read_to_end(settings.bootstrap_servers, settings.output_topic(analytic))
        assert len({r.key for r in records}) == len(records) == len(expected), analytic


def test_silence_closes_the_last_windows_even_after_a_kill_and_later_events_are_late(
    idle_settings,
):
    settings = idle_settings
    rule_delay = float(IDLE_ANALYTICS["IDLE_CLOSE_SECONDS"])
    watermark_delay = timedelta(seconds=int(IDLE_ANALYTICS["WATERMARK_SECONDS"]))
    log = settings.paths.log_dir / "streaming-idle.log"
    proc = launch(settings, log, *APP_ARGS)
    try:
        # 1-3: events, then silence.
        events = recent_events(datetime.now(UTC), seed=21)
        send(settings, events)
        sent_at = time.time()
        t = newest(events)
        # Before the rule: at most what the events' own watermark closes.
        own = closed_by(settings, events, t - watermark_delay)
        caught_up = wait_for(settings, proc, log, own, timeout=240)
        if caught_up - sent_at < rule_delay - 2:
            assert_tables_equal(settings, own)
        # The rule's first close: event time T + silence at silence = idle_close_seconds, or
        # as soon as the query has read the events, when that is later (a cold first batch).
        first = closed_by(settings, events, t + timedelta(seconds=rule_delay) - watermark_delay)
        seen = wait_for(settings, proc, log, first, timeout=240)
        due = max(sent_at + rule_delay, caught_up)
        assert seen - due <= IDLE_SLACK, (
            f"the windows the rule closes came {seen - due:.0f} s after it closed them "
            f"({seen - sent_at:.0f} s of silence); see {log}"
        )
        everything = all_rows(settings, events)
        wait_for(settings, proc, log, everything, timeout=240)
        assert_tables_equal(settings, everything)
        assert_topics_hold(settings, everything)

        # 4: more events, then kill -9 as soon as they are read; a new driver closes them.
        # They start now: event time moved on with the silence, so events of the minutes
        # before would be late (step 5).
        more = recent_events(datetime.now(UTC) + EVENT_SPAN, seed=22)
        committed_before = len(list((settings.paths.pipeline_checkpoint / "commits").iterdir()))
        send(settings, more)
        poll(
            lambda: len(list((settings.paths.pipeline_checkpoint / "commits").iterdir())),
            lambda n: n > committed_before,
            "a batch with the new events committed",
            timeout=120,
            interval=0.2,
        )
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        restarted_at = time.time()
        proc = launch(settings, log, *APP_ARGS)
        both = all_rows(settings, events + more)
        seen = wait_for(settings, proc, log, both, timeout=300)
        assert_tables_equal(settings, both)
        assert_topics_hold(settings, both)
        assert seen - restarted_at < 180, (
            f"the restarted driver closed them after {seen - restarted_at:.0f} s"
        )

        # 5: an event from before the close is late, counted, and changes nothing.
        dropped_before = late_rows(settings)
        late = recent_events(newest(more), seed=23)[-1:]
        late[0]["event_id"] = "late-after-idle-close"
        send(settings, late)
        poll(
            lambda: late_rows(settings) - dropped_before,
            lambda n: n >= 1,
            "the late event counted",
            timeout=120,
            interval=1,
        )
        assert_tables_equal(settings, both)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def late_rows(settings) -> int:
    """Events dropped as late so far, by the branch every event passes (revenue's)."""
    name = ANALYTICS[0].name
    return sum(
        r.get("rowsDroppedByWatermark") or 0
        for r in read_progress(settings.paths.metrics_dir)
        if r.get("name") == name
    )
