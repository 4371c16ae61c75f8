"""State stays flat while events keep coming: the watermarks really bound every query's state.

State is bounded in *event time* (a window, a 30-minute session gap, a 30-minute
attribution range, a 60-second watermark), so three hours of event time replayed quickly is
the long run: 10,800 in-order events, one a second, from 3,000 users, read 900 per
micro-batch (15 minutes of event time each).  Once event time is past the longest horizon
(30 minutes + watermark + the largest window), each query's state rows must stop growing;
without watermarks they would grow with every batch (about 2.5x between 70 minutes and the
end of this run).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.generators import EventGenerator
from include.kafka.topics import provision
from tests.conftest import poll
from tests.integration.conftest import isolated_settings
from tests.integration.dataset import ORACLES, send
from tests.integration.streaming import launch, progress_records

pytestmark = pytest.mark.integration

HOURS = 3
START = (datetime.now(UTC) - timedelta(hours=HOURS + 1)).replace(microsecond=0)
STEADY_AFTER = timedelta(minutes=70)  # past every state horizon of the default settings
MAX_GROWTH = 1.5  # largest over smallest state in the steady phase


@pytest.fixture(scope="module")
def long_run_settings(kafka, platform_env, tmp_path_factory):
    with isolated_settings(tmp_path_factory, "long_run") as settings:
        yield settings


def watermark_of(record: dict) -> datetime | None:
    mark = record.get("watermark")
    moment = datetime.fromisoformat(mark.replace("Z", "+00:00")) if mark else None
    return moment if moment and moment.year > 1970 else None


def offsets_read(record: dict, topic: str) -> int:
    """Records of the input topic the batch has read up to (the control topic aside)."""
    return sum(
        int(offset)
        for source in record["sources"]
        for offset in ((source["endOffset"] or {}).get(topic) or {}).values()
    )


def test_state_rows_stay_flat_over_hours_of_events(long_run_settings, capsys):
    settings = long_run_settings
    provision(settings)
    count = HOURS * 3600
    # Spread evenly over the users (not visits): the replay reads a fixed share of each
    # partition's backlog per batch, so every partition must hold the same stretch of event
    # time for the batches to advance them together.
    generator = EventGenerator(seed=3, users=3000, products=100, visits=False)
    events = list(generator.stream(START, timedelta(seconds=1), count))
    send(settings, events)
    log = settings.paths.log_dir / "streaming-long-run.log"
    proc = launch(settings, log, "--max-offsets-per-trigger", "900", "--trigger-seconds", "1")
    try:
        # Done when every analytic has read every event (a batch records its end offsets).
        def read_all(records):
            done = {
                r["name"] for r in records if offsets_read(r, settings.kafka.input_topic) == count
            }
            return set(ORACLES) <= done

        def fetch():
            assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
            return progress_records(settings)

        records = poll(fetch, read_all, "hours of events processed", timeout=900, interval=1)
    finally:
        proc.terminate()
        proc.wait(120)

    report = []
    for name in ORACLES:
        steady = [
            r["stateRowsTotal"]
            for r in records
            # Full batches only: the last, partial one holds less state by construction.
            if r["name"] == name
            and r["numInputRows"]
            and offsets_read(r, settings.kafka.input_topic) < count
            and (mark := watermark_of(r))
            and mark >= START + STEADY_AFTER
        ]
        report.append(f"{name:20} state rows in the steady phase: {steady}")
        assert len(steady) >= 5, f"{name}: too few batches in the steady phase to judge"
        assert min(steady) > 0, f"{name}: no state at all is not a plausible measurement"
        assert max(steady) <= MAX_GROWTH * min(steady), f"{name} state grows: {steady}"
        assert sum(r["rowsDroppedByWatermark"] for r in records if r["name"] == name) == 0
    with capsys.disabled():
        print("\n" + "\n".join(report))
