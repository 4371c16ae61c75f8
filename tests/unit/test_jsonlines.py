"""Rotated JSON-lines files: a month of records stays within the bound, no record is lost
or split across a rotation, and readers read only the tail they ask for."""

from __future__ import annotations

import json
import threading
from itertools import islice

from include import jsonlines
from include.jsonlines import append_line, chain, newest_lines, tail_lines
from include.quality.history import append_history, read_history
from include.quality.report import RunReport
from include.settings import Settings
from include.settings.sections import MaintenanceSettings
from include.streaming.progress import last_progress, read_progress


def record(i: int) -> str:
    return json.dumps({"name": f"q{i % 6}", "batchId": i, "pad": "x" * 200})


def test_a_month_of_progress_records_stays_within_the_bound(tmp_path):
    path = tmp_path / "progress.jsonl"
    max_bytes, keep = 200_000, 2
    # Six queries, one record each every 10 s for 30 days, would be 1.5 million lines
    # (~400 MB); 60,000 lines of the same size (14.5 MB) are already 24 times what the
    # current file and its two rotated ones may hold.
    total = 60_000
    for i in range(total):
        append_line(path, record(i), max_bytes, keep)
    files = chain(path)
    assert [f.name for f in files] == ["progress.jsonl", "progress.jsonl.1", "progress.jsonl.2"]
    assert all(f.stat().st_size <= max_bytes for f in files)
    assert sum(f.stat().st_size for f in files) <= (keep + 1) * max_bytes
    # What is kept is the newest, whole and in order, with no gap.
    ids = [json.loads(line)["batchId"] for line in jsonlines.all_lines(path)]
    assert ids == list(range(total - len(ids), total))
    assert len(ids) > 2 * max_bytes // len(record(0))


def test_a_smaller_keep_drops_the_files_beyond_it(tmp_path):
    path = tmp_path / "h.jsonl"
    for i in range(2000):
        append_line(path, record(i), 20_000, 5)
    assert len(chain(path)) == 6
    append_line(path, record(1), 20_000, 2)  # rotates only when full: fill it
    for i in range(200):
        append_line(path, record(i), 20_000, 2)
    assert [f.name for f in sorted(tmp_path.iterdir())] == ["h.jsonl", "h.jsonl.1", "h.jsonl.2"]


def test_concurrent_writers_under_one_lock_lose_and_split_no_record(tmp_path):
    path = tmp_path / "progress.jsonl"
    lock = threading.Lock()

    def write(start: int) -> None:
        for i in range(start, start + 2000):
            with lock:  # the listener's lock: Spark calls it from several threads
                append_line(path, record(i), 50_000, 1000)

    threads = [threading.Thread(target=write, args=(n * 2000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = sorted(json.loads(line)["batchId"] for line in jsonlines.all_lines(path))
    assert ids == list(range(8000))


def test_readers_read_backwards_across_rotated_files(tmp_path):
    path = tmp_path / "progress.jsonl"
    for i in range(3000):
        append_line(path, record(i), 100_000, 3)
    assert len(chain(path)) > 2
    newest = [json.loads(line)["batchId"] for line in islice(newest_lines(path), 700)]
    assert newest == list(range(2999, 2299, -1))  # across the current file and .1
    tail = [json.loads(line)["batchId"] for line in tail_lines(path, 30_000)]
    assert tail == list(range(3000 - len(tail), 3000))
    assert len(tail) == 30_000 // (len(record(2999)) + 1)  # as many whole lines as fit
    # The supervisor's reader still finds every query after a rotation left it a tiny file.
    append_line(path, "x" * 99_990, 100_000, 3)
    append_line(path, record(6000), 100_000, 3)
    found = last_progress(tmp_path, [f"q{n}" for n in range(6)])
    assert {name: r["batchId"] for name, r in found.items()} == {
        "q0": 6000,
        "q1": 2995,
        "q2": 2996,
        "q3": 2997,
        "q4": 2998,
        "q5": 2999,
    }
    assert [r["batchId"] for r in read_progress(tmp_path)][-2:] == [2999, 6000]


def test_quality_history_rotates_and_the_pages_read_only_what_they_show(tmp_path, monkeypatch):
    settings = Settings(
        state_dir=tmp_path,
        maintenance=MaintenanceSettings(jsonl_max_bytes=5000, jsonl_keep_files=2),
    )
    for i in range(300):
        append_history(
            settings, RunReport(f"run-{i}", "2026-01-01T00:00:00Z", "incremental", (), tmp_path)
        )
    files = chain(settings.paths.quality_dir / "history.jsonl")
    assert len(files) == 3 and all(f.stat().st_size <= 5000 for f in files)
    read = []
    real = jsonlines._reversed_lines

    def counting(path):
        for line in real(path):
            read.append(line)
            yield line

    monkeypatch.setattr(jsonlines, "_reversed_lines", counting)
    runs = read_history(settings, limit=3)
    assert [r["run_id"] for r in runs] == ["run-299", "run-298", "run-297"]
    assert len(read) <= 4  # the page's three runs, and at most one line more
