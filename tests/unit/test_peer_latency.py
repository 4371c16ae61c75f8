"""The peer row's per-window latency (benchmarks/peer.py): the first record that carries a
window's final value, against a hand-made topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

from benchmarks.peer import window_latencies


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _record(key: str, offset: int, at: float, start: str, end: str, **values) -> SimpleNamespace:
    row = {"window_start": start, "window_end": end, **values}
    return SimpleNamespace(
        key=key.encode(), partition=0, offset=offset, timestamp=at * 1000, value=json.dumps(row)
    )


def test_the_first_record_with_the_final_value_counts_from_the_window_end() -> None:
    w1 = ("2026-01-01T00:01:00.000Z", "2026-01-01T00:02:00.000Z")
    w2 = ("2026-01-01T00:02:00.000Z", "2026-01-01T00:03:00.000Z")
    end1, end2 = _at("2026-01-01T00:02:00"), _at("2026-01-01T00:03:00")
    records = [
        _record("w1|books", 0, end1 - 30, *w1, total=10),  # partial
        _record("w1|books", 1, end1 + 4, *w1, total=25),  # final, first time
        _record("w2|books", 2, end2 + 9, *w2, total=7),  # final at once
        _record("w1|books", 3, end1 + 14, *w1, total=25),  # same value again
    ]
    found = window_latencies(records, _at("2026-01-01T00:00:00"), _at("2026-01-01T00:10:00"))
    assert found.windows == 2
    assert found.records_per_window == 2.0  # (3 + 1) / 2
    assert found.from_window_end.p50 == 6.5  # of 4 and 9
    assert found.from_window_end.max == 9


def test_windows_not_whole_inside_the_run_are_left_out() -> None:
    early = ("2026-01-01T00:00:00.000Z", "2026-01-01T00:01:00.000Z")
    late = ("2026-01-01T00:09:30.000Z", "2026-01-01T00:10:30.000Z")
    records = [
        _record("a", 0, _at("2026-01-01T00:01:05"), *early, total=1),
        _record("b", 1, _at("2026-01-01T00:10:35"), *late, total=1),
    ]
    found = window_latencies(records, _at("2026-01-01T00:00:30"), _at("2026-01-01T00:10:00"))
    assert found.windows == 0 and found.records_per_window is None
