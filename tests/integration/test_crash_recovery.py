"""kill -9 the streaming driver mid-stream, three times; the sinks still equal the oracle.

1. A separate state dir and topics; the seeded data set of tests/integration/dataset.py.
2. Run every query with small micro-batches (400 offsets), so the data takes ~10 batches.
3. SIGKILL the whole spark-submit process group after the revenue query has committed
   EXPECTED_KILL_POINTS[0] batches; start again on the same checkpoints; repeat for the
   other kill points.  A kill can land anywhere: mid-batch, between a batch's Delta commit
   and its checkpoint commit, or while idle.
4. After the last restart, every row of every table equals the oracle (nothing lost,
   nothing written twice) and each malformed record is quarantined exactly once.
"""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from include.settings import Settings
from include.topics import provision
from tests.conftest import poll
from tests.integration.conftest import isolated_settings
from tests.integration.dataset import (
    ORACLES,
    expected_rows,
    produce_dataset,
    read_table,
    seeded_events,
    table_rows,
)
from tests.integration.streaming import launch

pytestmark = pytest.mark.integration

EXPECTED_KILL_POINTS = (2, 4, 7)  # committed revenue batches before each kill -9
APP_ARGS = ("--max-offsets-per-trigger", "400", "--trigger-seconds", "2")


@pytest.fixture(scope="module")
def crash_settings(kafka, platform_env, tmp_path_factory):
    with isolated_settings(tmp_path_factory, "crash") as settings:
        yield settings


def committed_batches(settings: Settings, query: str) -> int:
    commits = settings.checkpoint_path(query) / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.exists() else 0


def kill_hard(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the JVM and the Python driver, no shutdown hooks
    proc.wait(30)


def run_then_kill(settings: Settings, log, kill_point: int) -> None:
    """Start the app and kill -9 it once the revenue query has committed kill_point batches."""
    proc = launch(settings, log, *APP_ARGS)
    try:
        poll(
            lambda: (proc.poll(), committed_batches(settings, "revenue_by_category")),
            lambda state: state[0] is not None or state[1] >= kill_point,
            f"{kill_point} committed revenue batches before the kill",
            timeout=240,
            interval=0.5,
        )
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
    finally:
        kill_hard(proc)


def wait_for_oracle_rows(analytic: str, expected: pd.DataFrame, proc, settings, log):
    def fetch():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        return table_rows(analytic, settings, expected.columns)

    return poll(
        fetch,
        lambda df: len(df) >= len(expected),
        f"{len(expected)} {analytic} rows after the restarts",
        timeout=300,
        interval=3,
    )


def test_three_hard_kills_lose_and_duplicate_nothing(crash_settings):
    settings = crash_settings
    provision(settings)
    sent, flush = seeded_events()
    malformed_at = produce_dataset(settings, sent, flush)
    log = settings.log_dir / "streaming-crash.log"

    for kill_point in EXPECTED_KILL_POINTS:
        run_then_kill(settings, log, kill_point)

    proc = launch(settings, log, *APP_ARGS)
    try:
        for analytic in ORACLES:
            expected = expected_rows(analytic, sent, flush, settings)
            got = wait_for_oracle_rows(analytic, expected, proc, settings, log)
            assert len(got) == len(expected), f"{analytic}: rows written twice"
            pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        quarantine = poll(
            lambda: read_table(settings.table_path("dead_letters")),
            lambda df: len(df) >= len(malformed_at),
            "quarantined records",
            timeout=120,
        )
        assert sorted(
            zip(quarantine.source_partition, quarantine.source_offset, strict=True)
        ) == sorted(malformed_at)
    finally:
        kill_hard(proc)
