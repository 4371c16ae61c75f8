"""The backfill on the real broker with the real Spark job: exact, repeatable, and refusing
an interval Kafka's retention no longer covers.

1. One hour of events from 600 users (plus re-sent duplicates) whose Kafka record time
   is their event time, as for events produced live.
2. Backfill a 30-minute interval: every row of every backfill table equals the oracle's
   rows of that interval (computed from docs/DESIGN.md's semantics, tests/oracle.py).
3. Backfill it again: the same rows, none twice.
4. Delete the partitions' first records, as retention would: the same interval is refused
   with a message saying what is gone; the tables are untouched.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from kafka import TopicPartition

from include.analytics import ANALYTIC_NAMES, TIME_COLUMNS
from include.generators import EventGenerator
from include.kafka.client import admin, producer
from include.kafka.topics import provision
from include.runtime.spark_launch import BACKFILL_APP, launch_app
from include.settings import Settings
from include.tables import read_table
from spark_jobs.backfill_app import EXIT_NOT_RETAINED
from tests.integration.conftest import isolated_settings
from tests.integration.dataset import ORACLES, normalise

pytestmark = pytest.mark.integration

T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
INTERVAL = (T0 + timedelta(minutes=10), T0 + timedelta(minutes=40))


@pytest.fixture(scope="module")
def backfill_settings(kafka, platform_env, tmp_path_factory):
    with isolated_settings(tmp_path_factory, "backfill") as settings:
        yield settings


@pytest.fixture(scope="module")
def events(backfill_settings):
    settings = backfill_settings
    provision(settings)
    generated = list(
        EventGenerator(seed=21, users=600, products=20).stream(
            T0, timedelta(milliseconds=500), 7200
        )
    )
    sent = generated + random.Random(3).sample(generated, 30)
    client = producer(settings.bootstrap_servers)
    for event in sent:
        moment = datetime.fromisoformat(event["timestamp"])
        client.send(
            settings.kafka.input_topic,
            key=event["user_id"].encode(),
            value=json.dumps(event).encode(),
            timestamp_ms=int(moment.timestamp() * 1000),
        )
    client.flush()
    client.close()
    return sent


def run_backfill(settings: Settings, name: str) -> tuple[int, str]:
    log = settings.paths.log_dir / f"backfill-{name}.log"
    start, end = (moment.isoformat() for moment in INTERVAL)
    proc = launch_app(settings, BACKFILL_APP, log, "--start", start, "--end", end)
    try:
        code = proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, log.read_text()


def expected_in_interval(analytic: str, events: list[dict], settings: Settings) -> pd.DataFrame:
    oracle, order = ORACLES[analytic]
    rows = oracle(events, settings.analytics)
    times = pd.to_datetime(rows[TIME_COLUMNS[analytic]], utc=True)
    inside = rows[(times >= INTERVAL[0]) & (times < INTERVAL[1])]
    return normalise(inside, order)


def backfilled(analytic: str, settings: Settings, columns) -> pd.DataFrame:
    frame = read_table(settings.paths.backfill_table_path(analytic))
    assert frame is not None, f"no backfill table for {analytic}"
    return normalise(frame, ORACLES[analytic][1])[list(columns)]


def test_backfill_equals_the_oracle_and_a_rerun_changes_nothing(backfill_settings, events):
    settings = backfill_settings
    first = {}
    for attempt in ("first", "second"):
        code, log = run_backfill(settings, attempt)
        assert code == 0, log[-3000:]
        for analytic in ANALYTIC_NAMES:
            expected = expected_in_interval(analytic, events, settings)
            assert len(expected) > 5, f"{analytic}: the interval must hold real data"
            got = backfilled(analytic, settings, expected.columns)
            assert len(got) == len(expected), f"{analytic} after the {attempt} run"
            pd.testing.assert_frame_equal(got, expected, check_dtype=False)
            if attempt == "first":
                first[analytic] = got
            else:
                pd.testing.assert_frame_equal(got, first[analytic])


def test_an_interval_retention_has_deleted_is_refused(backfill_settings, events):
    settings = backfill_settings
    topic = settings.kafka.input_topic
    before = {a: read_table(settings.paths.backfill_table_path(a)) for a in ANALYTIC_NAMES}
    # What retention does to old segments: the first records of every partition go.
    client = admin(settings.bootstrap_servers)
    client.delete_records({TopicPartition(topic, p): 100 for p in range(settings.kafka.partitions)})
    client.close()
    code, log = run_backfill(settings, "after-retention")
    assert code == EXIT_NOT_RETAINED, log[-3000:]
    assert "Kafka no longer holds every event of interval" in log
    assert "has deleted records before offset 100" in log
    for analytic, frame in before.items():
        pd.testing.assert_frame_equal(
            read_table(settings.paths.backfill_table_path(analytic)), frame
        )
