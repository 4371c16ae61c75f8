"""Checkpoint inspection, lag, backups and relocation on crafted checkpoint directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from include.settings import Settings
from include.streaming.checkpoints import (
    backup_if_changed,
    inspect,
    lag,
    relocate,
)

META = {"batchWatermarkMs": 0, "batchTimestampMs": 1, "conf": {}}


def write_checkpoint(root: Path, planned: int, committed: int, topic: str = "events") -> Path:
    (root / "offsets").mkdir(parents=True)
    (root / "commits").mkdir()
    (root / "metadata").write_text(json.dumps({"id": "q-1"}))
    for batch in range(planned + 1):
        offsets = {topic: {"0": 100 * (batch + 1), "1": 50 * (batch + 1)}}
        (root / "offsets" / str(batch)).write_text(f"v1\n{json.dumps(META)}\n{json.dumps(offsets)}")
    for batch in range(committed + 1):
        (root / "commits" / str(batch)).write_text(
            f"v1\n{json.dumps({'nextBatchWatermarkMs': 1000 * batch})}"
        )
    return root


def test_a_clean_checkpoint_is_healthy_and_gives_its_committed_offsets(tmp_path: Path) -> None:
    report = inspect(write_checkpoint(tmp_path / "q", planned=3, committed=3))
    assert report.healthy, report.problems
    assert (report.query_id, report.last_planned, report.last_committed) == ("q-1", 3, 3)
    assert report.committed_offsets == {"events": {"0": 400, "1": 200}}
    assert report.committed_watermark_ms == 3000


def test_one_batch_in_flight_is_normal(tmp_path: Path) -> None:
    report = inspect(write_checkpoint(tmp_path / "q", planned=4, committed=3))
    assert report.healthy, report.problems
    assert report.committed_offsets == {"events": {"0": 400, "1": 200}}  # not batch 4's


def test_a_gap_of_more_than_one_batch_is_a_problem(tmp_path: Path) -> None:
    report = inspect(write_checkpoint(tmp_path / "q", planned=5, committed=3))
    assert ["planned but only up to 3 committed" in p for p in report.problems] == [True]


def test_an_unparseable_offset_file_is_a_problem(tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "q", planned=2, committed=2)
    (checkpoint / "offsets" / "2").write_text("v1\n{not json")
    assert any("offsets/2 does not parse" in p for p in inspect(checkpoint).problems)


def test_a_missing_checkpoint_is_not_an_error(tmp_path: Path) -> None:
    report = inspect(tmp_path / "never-started")
    assert not report.exists and report.healthy


def test_lag_is_counted_from_the_committed_offsets(tmp_path: Path) -> None:
    report = inspect(write_checkpoint(tmp_path / "q", planned=1, committed=0))
    assert lag(report, {"events": {"0": 130, "1": 50, "2": 7}}) == {
        "events/0": 30,
        "events/1": 0,
        "events/2": 7,  # a partition the query has never read
    }


def test_a_checkpoint_is_backed_up_when_code_or_config_changes(tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "q", planned=1, committed=1)
    assert backup_if_changed(checkpoint, "aaa") is None  # first use: nothing to compare
    assert backup_if_changed(checkpoint, "aaa") is None  # unchanged
    copy = backup_if_changed(checkpoint, "bbb")
    assert copy is not None and (copy / "commits" / "1").exists()
    assert (checkpoint / "commits" / "1").exists()  # the original stays in place


def test_relocate_moves_the_checkpoints_and_every_table_together(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    write_checkpoint(settings.paths.pipeline_checkpoint, planned=0, committed=0)
    # A checkpoint of the six-query design, as an upgraded state dir has.
    write_checkpoint(settings.paths.checkpoint_path("conversion_funnel"), planned=3, committed=3)
    for table in ("revenue_by_category", "dead_letters"):
        (settings.paths.table_path(table) / "_delta_log").mkdir(parents=True)
    target = relocate(settings)
    assert (target / "checkpoints" / "pipeline" / "metadata").exists()
    assert (target / "checkpoints" / "conversion_funnel" / "commits" / "3").exists()
    assert (target / "tables" / "revenue_by_category" / "_delta_log").is_dir()
    assert (target / "tables" / "dead_letters" / "_delta_log").is_dir()
    assert not settings.paths.pipeline_checkpoint.exists()
    assert not settings.paths.checkpoint_path("conversion_funnel").exists()
    assert not settings.paths.table_path("revenue_by_category").exists()


@pytest.mark.parametrize("planned,committed", [(0, 0), (7, 6)])
def test_healthy_shapes(tmp_path: Path, planned: int, committed: int) -> None:
    assert inspect(write_checkpoint(tmp_path / "q", planned, committed)).healthy


def test_spark_refusing_a_checkpoint_gets_the_relocate_command() -> None:
    from spark_jobs.lifecycle import checkpoint_hint

    spark_says = (
        "[STREAM_FAILED] Query [id = 1] terminated with exception: "
        "[STATE_STORE_KEY_SCHEMA_NOT_COMPATIBLE] Provided key schema does not match"
    )
    hint = checkpoint_hint("pipeline", spark_says)
    assert hint and "`.venv/bin/python -m include.streaming.checkpoints relocate`" in hint
    assert checkpoint_hint("pipeline", "Connection to Kafka refused") is None


def test_a_damaged_checkpoint_refuses_the_start(tmp_path: Path, monkeypatch) -> None:
    from spark_jobs.lifecycle import check_checkpoints

    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    assert check_checkpoints(settings) is None  # nothing yet: a first start
    write_checkpoint(settings.paths.pipeline_checkpoint, planned=2, committed=1)
    assert check_checkpoints(settings) is None
    write_checkpoint(tmp_path / "bad", planned=5, committed=1)
    shutil.rmtree(settings.paths.pipeline_checkpoint)
    shutil.copytree(tmp_path / "bad", settings.paths.pipeline_checkpoint)
    refusal = check_checkpoints(settings)
    assert refusal and refusal.startswith(
        f"checkpoint {settings.paths.pipeline_checkpoint} looks damaged"
    )
    assert "planned but only up to 1 committed" in refusal


def test_checkpoints_of_the_six_query_design_refuse_the_start_with_the_fix(
    tmp_path: Path, monkeypatch
) -> None:
    from spark_jobs.lifecycle import check_checkpoints

    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    write_checkpoint(settings.paths.checkpoint_path("user_sessions"), planned=9, committed=9)
    refusal = check_checkpoints(settings)
    assert refusal and "checkpoints of the six-query design (user_sessions)" in refusal
    assert "`.venv/bin/python -m include.streaming.checkpoints relocate`" in refusal
    assert not settings.paths.pipeline_checkpoint.exists()  # nothing changed
    relocate(settings)
    assert check_checkpoints(settings) is None
