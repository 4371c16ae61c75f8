"""Where a micro-batch's time goes (benchmarks/breakdown.py): jobs are told apart by query,
batch and step, and the means are over the batches both sources know."""

from __future__ import annotations

import pytest

from benchmarks.breakdown import Job, breakdown, parse_job


def rest_job(description: str, name: str, start: str, end: str, tasks: int = 2) -> dict:
    """A job as the Spark REST API lists it."""
    return {
        "name": name,
        "description": description,
        "submissionTime": f"2026-11-29T10:28:{start}GMT",
        "completionTime": f"2026-11-29T10:28:{end}GMT",
        "numTasks": tasks,
    }


def streaming(query: str, batch: str) -> str:
    return f"{query}\nid = 1\nrunId = 2\nbatch = {batch}"


def test_a_sink_step_a_delta_job_and_an_unnamed_job_are_told_apart() -> None:
    named = parse_job(rest_job(streaming("revenue", "7"), "Delta write", "01.000", "01.250"))
    assert named == Job("revenue", 7, "Delta write", 250.0, 2)
    delta = parse_job(
        rest_job(
            streaming("Delta: revenue", "7: Compute snapshot for version: 12"),
            "Delta write",
            "01.000",
            "03.500",
            tasks=53,
        )
    )
    assert delta == Job("revenue", 7, "Delta: compute snapshot", 2500.0, 53)
    unnamed = parse_job(
        rest_job(
            streaming("funnel", "3"), "start at NativeMethodAccessorImpl.java:0", "00.5", "01.0"
        )
    )
    assert unnamed is not None and unnamed.kind == "batch"


def test_jobs_of_other_work_and_running_jobs_are_left_out() -> None:
    assert parse_job(rest_job("a backfill", "count at x", "00.0", "01.0")) is None
    running = rest_job(streaming("revenue", "1"), "Kafka write", "00.0", "01.0")
    del running["completionTime"]
    assert parse_job(running) is None


def record(query: str, batch: int, rows: int, add_batch: float, trigger: float) -> dict:
    return {
        "name": query,
        "batchId": batch,
        "numInputRows": rows,
        "durationMs": {"addBatch": add_batch, "triggerExecution": trigger, "walCommit": 10},
        "stateOperators": [{"commitTimeMs": 30}, {"commitTimeMs": 12}],
    }


def test_means_per_batch_over_the_batches_both_sources_know() -> None:
    records = [
        record("revenue", 1, 100, add_batch=1000, trigger=1500),
        record("revenue", 2, 50, add_batch=600, trigger=900),
        record("revenue", 3, 0, add_batch=100, trigger=200),  # no data: counted apart
        record("revenue", 4, 80, add_batch=999, trigger=999),  # its jobs are forgotten
    ]
    jobs = [
        Job("revenue", 1, "empty check", 400, 3),
        Job("revenue", 1, "Delta write", 300, 1),
        Job("revenue", 1, "Delta: compute snapshot", 200, 50),
        Job("revenue", 2, "empty check", 200, 3),
        Job("revenue", 2, "Delta write", 100, 1),
        Job("other", 1, "empty check", 9999, 9),
    ]
    (got,) = breakdown(records, jobs)
    assert (got.query, got.batches, got.no_data_batches) == ("revenue", 2, 1)
    assert got.trigger_ms == pytest.approx((1500 + 900) / 2)
    assert got.phases_ms["walCommit"] == pytest.approx(10)
    assert got.state_commit_ms == pytest.approx(42)
    assert got.jobs_per_batch == pytest.approx((3 + 2) / 2)
    assert got.tasks_per_batch == pytest.approx((54 + 4) / 2)
    assert got.jobs_ms == pytest.approx(
        {"empty check": 300, "Delta write": 200, "Delta: compute snapshot": 100}
    )
    # addBatch minus the jobs: (1000 - 900) and (600 - 300)
    assert got.outside_jobs_ms == pytest.approx(200)


def test_a_cpu_sample_goes_to_its_first_matching_category() -> None:
    from benchmarks import jfr_summary

    compile_in_a_task = [
        "org.codehaus.janino.Scanner.peek",
        "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator$.doCompile",
        "org.apache.spark.sql.execution.WholeStageCodegenExec.doCodeGen",  # also "generating"
        "org.apache.spark.executor.Executor$TaskRunner.run",
    ]
    chmod = ["java.lang.ProcessImpl.forkAndExec", "org.apache.hadoop.util.Shell.runCommand"]
    rows = ["org.apache.spark.sql.catalyst.expressions.GeneratedClass$Gen.processNext"]
    found = jfr_summary.summarise(
        [
            ("Executor task launch worker for task 0.0 in stage 3.0", compile_in_a_task),
            ("Executor task launch worker for task 1.0 in stage 3.0", compile_in_a_task),
            ("stream execution thread for revenue [id = 1]", chmod),
            ("dispatcher-event-loop-0", rows),
            ("Executor task launch worker for task 2.0 in stage 4.0", ["java.lang.Thread.run"]),
        ]
    )
    assert found["samples"] == 5
    assert found["categories"] == {
        "codegen: compiling (janino)": 0.4,
        "forking a process (chmod, stat, rm)": 0.2,
        "generated code (the rows' own work)": 0.2,
        "other": 0.2,
    }
    assert found["threads"] == {
        "task threads": 3,
        "query threads (planning, commits, foreachBatch)": 1,
        "other threads": 1,
    }
