"""The running platform as the end-to-end test reads it: `make` targets, the sink tables
against the oracle, the supervisor's verdicts, restarts, and the seconds of each step."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

from include.analytics import QUERIES
from include.kafka.client import read_to_end
from include.runtime.airflow_api import AirflowApi
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.streaming.checkpoints import inspect
from include.streaming.lease import Holder, live_holder
from include.streaming.status import pipeline_status
from include.tables import read_table
from tests.conftest import poll
from tests.integration.dataset import ORACLES, expected_of, normalise
from tests.wire import events_in


def make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", target], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"make {target} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def read_revenue(settings: Settings) -> pd.DataFrame:
    frame = read_table(settings.paths.table_path("revenue_by_category"))
    return pd.DataFrame() if frame is None else frame


def read_input_events(settings: Settings) -> list[dict]:
    records = read_to_end(settings.bootstrap_servers, settings.kafka.input_topic)
    return events_in((r.value for r in records), settings)


def assert_tables_equal_oracle(settings: Settings, must_have_rows: set[str]) -> None:
    """Every row of every sink table equals the oracle's row for its key, computed over the
    events in the input topic, and no key is written twice.  Tables still waiting for their
    first closed window (5-minute windows, 30-minute sessions) may be empty, except those
    in `must_have_rows`."""
    events = read_input_events(settings)
    for analytic, (_, order) in ORACLES.items():
        got = read_table(settings.paths.table_path(analytic))
        if got is None or got.empty:
            assert analytic not in must_have_rows, f"{analytic} has no rows"
            continue
        got = normalise(got, order)
        assert not got.duplicated(order).any(), f"{analytic}: a row written twice"
        expected = normalise(expected_of(analytic, events, settings), order)
        matched = expected.merge(got[order], on=order, how="inner")
        assert len(matched) == len(got), f"{analytic}: sink rows the oracle does not have"
        pd.testing.assert_frame_equal(
            got[list(expected.columns)], matched[list(expected.columns)], check_dtype=False
        )


def restarted_by(
    api: AirflowApi, settings: Settings, old: Holder, since: float, dag_id: str = "supervisor"
) -> float:
    """Run `dag_id` until a new driver holds the checkpoint and has committed a batch; the
    seconds from `since` (time.monotonic() when the driver died or froze)."""
    checkpoint = settings.paths.pipeline_checkpoint
    committed = inspect(checkpoint).last_committed or -1

    def new_driver() -> Holder | None:
        holder = live_holder(checkpoint)
        return holder if holder and holder.pid != old.pid else None

    run = api.trigger(dag_id)
    assert api.wait_for_run(dag_id, run, {"success"}, timeout=400) == "success"
    poll(new_driver, lambda h: h is not None, "a new driver on the checkpoints", timeout=240)
    poll(
        lambda: inspect(checkpoint).last_committed or -1,
        lambda last: last > committed,
        "a batch committed by the new driver",
        timeout=240,
    )
    return time.monotonic() - since


def assert_pipeline_shows(settings: Settings, env: dict[str, str], states: set[str]) -> None:
    """Wait for the supervisor to judge every query in `states`; `make status` then shows
    each query in one of them and exits 0."""
    poll(
        lambda: pipeline_status(settings),
        lambda s: s.watched and {q.state for q in s.queries} <= states,
        f"the supervisor to judge every query {' or '.join(sorted(states))}",
        timeout=120,
    )
    shown = make("status", env, 60).stdout
    rows = [ln.split() for ln in shown.splitlines()]
    for query in QUERIES:
        row = next(r for r in rows if r and r[0] == query)
        assert row[1] in states, shown


def assert_no_restart_of_a_past_slot(api: AirflowApi, since: datetime) -> None:
    """The restart DAG ran no slot from before the platform started (Airflow used to run the
    latest past one at once: a restart of the driver just started)."""
    scheduled = [r for r in api.runs("streaming_restart") if r["run_type"] == "scheduled"]
    past = [r["run_after"] for r in scheduled if datetime.fromisoformat(r["run_after"]) < since]
    assert not past, f"scheduled restarts of slots before the platform started: {past}"


class Laps:
    """Seconds per step of the test, written beside the platform's state (step-timings.json)
    so the slow step of a slow run can be named."""

    def __init__(self, path: Path) -> None:
        self.path, self.laps, self.last = path, {}, time.monotonic()

    def __call__(self, step: str) -> None:
        now = time.monotonic()
        self.laps[step] = round(now - self.last, 1)
        self.last = now
        self.path.write_text(json.dumps(self.laps, indent=1))
