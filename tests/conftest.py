"""Shared test helpers: polling with a reason, and an exit that cannot hang."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# Every Spark driver the tests start (directly, through Airflow or the benchmarks) compiles
# with C1 only: a driver that lives a minute spent half its CPU in the C2 compiler, for
# code it never ran long enough to gain from (`[spark] driver_java_options`, README "Tests").
C1_ONLY = "-XX:TieredStopAtLevel=1"
os.environ.setdefault("ECOM_SPARK__DRIVER_JAVA_OPTIONS", C1_ONLY)
# The same for the brokers, which live for one test module.
os.environ.setdefault("ECOM_KAFKA__BROKER_JAVA_OPTIONS", C1_ONLY)


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    what: str,
    timeout: float,
    interval: float = 2.0,
) -> T:
    """Call fetch() until done(result); fail naming what was awaited and the last result."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fetch()
        if done(last):
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}"[:2000]
    )


_EXIT_STATUS: list[int] = []


def parquet_files(table) -> int:
    """The parquet files in a Delta table's folder, referenced by its log or not."""
    return sum(
        name.endswith(".parquet")
        for folder, _, names in os.walk(table)
        if "_delta_log" not in folder
        for name in names
    )


def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Leave as soon as the results are final, without the interpreter's exit handlers.

    kafka-python 3.0's clients join their IO thread without a timeout when closed, and a
    client still open at interpreter exit (ours or a library's) can then hang the test
    command after its summary: CI once sat 50 minutes past "172 passed".  Every service
    the tests started is stopped by its fixture by now, so nothing is lost by skipping
    the exit handlers; what was still running is named, so a leak stays visible.
    """
    import os
    import sys
    import threading

    alive = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if alive:
        names = ", ".join(f"{t.name}{' (daemon)' if t.daemon else ''}" for t in alive)
        print(f"[tests] threads still running at exit: {names}", file=sys.__stderr__)
    if _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.__stdout__.flush()
        sys.__stderr__.flush()
        os._exit(_EXIT_STATUS[0])
