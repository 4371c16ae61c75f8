"""kill -9 the streaming driver mid-stream, twice, then SIGTERM it while it is still
busy; the sinks still equal the oracle.

1. A separate state dir and topics; the seeded data set of tests/integration/dataset.py.
2. Run every query with small micro-batches (400 offsets), so the data takes ~10 batches.
3. SIGKILL the whole spark-submit process group after the revenue query has committed
   EXPECTED_KILL_POINTS[0] batches; start again on the same checkpoints; repeat for the
   other kill points.  A kill can land anywhere: mid-batch, between a batch's Delta commit
   and its checkpoint commit, or while idle.
4. SIGTERM it at GRACEFUL_STOP_POINT, with batches still queued (a query that is behind
   is never idle): it finishes its running batches, stops and exits 0, no batch
   interrupted (the graceful stop used to wait for an idle moment that never came).
5. After the last restart, every row of every table equals the oracle (nothing lost,
   nothing written twice) and each malformed record is quarantined exactly once.
"""

from __future__ import annotations

import os
import signal

import pandas as pd
import pytest

from include.driver_lease import read_holder
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
from tests.integration.streaming import launch, said_wrong

pytestmark = pytest.mark.integration

EXPECTED_KILL_POINTS = (3, 6)  # committed revenue batches before each kill -9
GRACEFUL_STOP_POINT = 9  # of about 12 batches: the queries are still behind
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


def run_until(settings: Settings, log, batches: int):
    """Start the app; return it once the revenue query has committed `batches` batches."""
    proc = launch(settings, log, *APP_ARGS)
    try:
        poll(
            lambda: (proc.poll(), committed_batches(settings, "revenue_by_category")),
            lambda state: state[0] is not None or state[1] >= batches,
            f"{batches} committed revenue batches",
            timeout=240,
            interval=0.5,
        )
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
    except BaseException:
        kill_hard(proc)
        raise
    return proc


def stop_under_load(settings: Settings, log) -> None:
    """SIGTERM while batches are queued: exit 0 at a batch boundary, nothing interrupted."""
    proc = run_until(settings, log, GRACEFUL_STOP_POINT)
    try:
        driver = read_holder(settings.checkpoint_path("revenue_by_category"))
        assert driver is not None, f"no driver holds the checkpoint; see {log}"
        os.kill(driver.pid, signal.SIGTERM)  # the Python driver, as the supervisor does
        code = proc.wait(timeout=180)
        assert code == 0, f"a graceful stop must exit 0, not {code}; {log} says:\n{said_wrong(log)}"
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    said = log.read_text()
    assert "interrupting it" not in said, f"a batch was interrupted; see {log}"
    for query in ORACLES:
        assert f"stopped query {query} after batch" in said, f"{query} not stopped; see {log}"


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


def test_hard_kills_and_a_stop_under_load_lose_and_duplicate_nothing(crash_settings):
    settings = crash_settings
    provision(settings)
    sent, flush = seeded_events()
    malformed_at = produce_dataset(settings, sent, flush)
    log = settings.log_dir / "streaming-crash.log"

    for kill_point in EXPECTED_KILL_POINTS:
        kill_hard(run_until(settings, log, kill_point))
    stop_under_load(settings, settings.log_dir / "streaming-graceful.log")

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
