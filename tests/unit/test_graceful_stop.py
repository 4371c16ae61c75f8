"""The graceful stop: each query after the batch it is running, together, without waiting
for an idle moment that a query behind on its input never has."""

from __future__ import annotations

import logging
import threading

import pytest

from spark_jobs import lifecycle


class Clock:
    """Fake time: every sleep moves it on and lets the queries work."""

    def __init__(self) -> None:
        self.now = 0.0
        self.queries: list[ScriptedQuery] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for query in self.queries:
            query.tick(self.now)


class ScriptedQuery:
    """A query whose micro-batches end at the given times, each starting as the one before
    ends (a query behind on its input); with no times, an idle query."""

    def __init__(self, name: str, clock: Clock, batch_ends: list[float]) -> None:
        self.name = name
        self.clock = clock
        self.batch_ends = list(batch_ends)
        self.finished = 4  # batches finished before the stop was asked
        self.stopped_at: float | None = None
        self.error: str | None = None  # what exception() reports once stopped
        clock.queries.append(self)

    def tick(self, now: float) -> None:
        while self.isActive and self.batch_ends and self.batch_ends[0] <= now:
            self.batch_ends.pop(0)
            self.finished += 1

    @property
    def isActive(self) -> bool:
        return self.stopped_at is None

    @property
    def status(self) -> dict:
        return {"isTriggerActive": bool(self.batch_ends)}

    @property
    def lastProgress(self) -> dict:
        return {"batchId": self.finished - 1}

    def stop(self) -> None:
        self.stopped_at = self.clock.now

    def exception(self) -> str | None:
        return self.error


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(lifecycle.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(lifecycle.time, "sleep", fake.sleep)
    return fake


def test_a_query_behind_stops_when_its_running_batch_ends(clock, caplog):
    # Always busy: batches end at 7 s, 15 s, 22 s... and the next starts at once.
    behind = ScriptedQuery("revenue_by_category", clock, [7.0, 15.0, 22.0, 30.0, 38.0])
    idle = ScriptedQuery("dead_letters", clock, [])

    with caplog.at_level(logging.INFO, logger=lifecycle.log.name):
        lifecycle.stop_gracefully([behind, idle], timeout=90)

    assert idle.stopped_at == 0.0
    assert behind.stopped_at == pytest.approx(7.0, abs=0.15)
    assert behind.finished == 5, "exactly the batch that was running finished"
    assert "interrupting" not in caplog.text
    assert "stopped query revenue_by_category after batch 4" in caplog.text


def test_queries_are_waited_for_together_not_one_after_another(clock):
    first = ScriptedQuery("high_value_users", clock, [20.0, 40.0])
    second = ScriptedQuery("conversion_funnel", clock, [25.0, 50.0])

    lifecycle.stop_gracefully([first, second], timeout=90)

    assert first.stopped_at == pytest.approx(20.0, abs=0.15)
    assert second.stopped_at == pytest.approx(25.0, abs=0.15)


def test_a_batch_still_running_at_the_timeout_is_interrupted_and_said_so(clock, caplog):
    slow = ScriptedQuery("user_sessions", clock, [500.0])

    with caplog.at_level(logging.WARNING, logger=lifecycle.log.name):
        lifecycle.stop_gracefully([slow], timeout=30)

    assert slow.stopped_at == pytest.approx(30.0, abs=0.15)
    assert slow.finished == 4
    assert "query user_sessions still busy after 30 s; interrupting it" in caplog.text


def stop_now(queries) -> int:
    asked = threading.Event()
    asked.set()
    return lifecycle.supervise(queries, None, None, asked)


# A Kafka write the stop cut short (the producer turns the interrupt into its own error),
# and a real failure in the last batch.
KAFKA_INTERRUPTED = (
    "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function "
    "in foreach batch sink.\n: org.apache.kafka.common.errors.InterruptException: "
    "java.lang.InterruptedException"
)
DELTA_FAILED = (
    "[DELTA_CONCURRENT_APPEND] ConcurrentAppendException: Files were added to the root "
    "of the table by a concurrent update."
)


def test_a_batch_the_stop_cut_short_is_a_warning_and_exit_0(clock, caplog):
    behind = ScriptedQuery("revenue_by_category", clock, [7.0, 15.0])
    behind.error = KAFKA_INTERRUPTED
    idle = ScriptedQuery("dead_letters", clock, [])

    with caplog.at_level(logging.INFO, logger=lifecycle.log.name):
        assert stop_now([behind, idle]) == 0

    assert "query revenue_by_category: the stop cut short the batch after 4" in caplog.text
    assert "failed" not in caplog.text


def stopped_with(clock, caplog, name: str, error: object) -> tuple[int, str]:
    """A query busy with a batch, stopped; its last batch ends with `error`: the exit code
    and the log."""
    query = ScriptedQuery(name, clock, [3.0])
    query.error = error
    with caplog.at_level(logging.INFO, logger=lifecycle.log.name):
        code = stop_now([query])
    return code, caplog.text


def test_any_other_error_in_the_last_batch_is_a_failure(clock, caplog):
    code, said = stopped_with(clock, caplog, "user_sessions", DELTA_FAILED)

    assert code == 1
    assert "query user_sessions failed: [DELTA_CONCURRENT_APPEND]" in said


def test_a_query_that_ended_before_the_stop_is_a_failure_even_if_interrupted(clock):
    dead = ScriptedQuery("conversion_funnel", clock, [])
    dead.stopped_at = 0.0  # ended on its own before anyone asked
    dead.error = "java.lang.InterruptedException"

    assert stop_now([dead]) == 1


class Captured(Exception):
    """pyspark's shape of a JVM error: a message, the JVM trace, the cause converted."""

    def __init__(self, desc: str, trace: str = "", cause: Captured | None = None) -> None:
        super().__init__(desc)
        self._stackTrace = trace
        self._cause = cause


# What the query reported when the stop interrupted its Delta write through reflection:
# no message of its own, the interrupt two causes down.
REFLECTED_INTERRUPT = Captured(
    "null\n=== Streaming Query ===\nIdentifier: click_to_purchase",
    "\tat org.apache.spark.sql.execution.streaming.StreamExecution.runStream",
    Captured(
        "null",
        "java.lang.reflect.InvocationTargetException\n\tat jdk.internal.reflect.Method.invoke"
        "\nCaused by: java.lang.InterruptedException\n\tat java.lang.Object.wait",
    ),
)


def test_an_interrupt_among_the_causes_of_a_messageless_error_is_the_stop(clock, caplog):
    code, said = stopped_with(clock, caplog, "click_to_purchase", REFLECTED_INTERRUPT)

    assert code == 0
    assert "(cause: java.lang.InterruptedException)" in said
    assert "failed" not in said


def test_stack_frames_alone_do_not_make_an_error_an_interruption():
    frames = Captured(
        "null", "x.BoomError: no space left\n\tat java.lang.Thread.interrupted(Thread)"
    )
    assert not lifecycle.interrupted_by_stop(frames)
    assert lifecycle.error_summary(frames) == "null (cause: x.BoomError: no space left)"
