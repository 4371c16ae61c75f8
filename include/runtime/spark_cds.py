"""Records the Spark drivers' class-data archive (Java's AppCDS): `make setup` runs this once.

A Spark driver loads some 15,000 classes from ~250 jars at every start, reading, verifying
and parsing each.  Java can map them ready-made from an archive recorded by an earlier run
instead (``-XX:ArchiveClassesAtExit``, then ``-XX:SharedArchiveFile``): this module records
one with a short run of the streaming pipeline (spark_jobs/warmup.py, no broker needed),
and every driver the platform launches maps it
(:func:`include.runtime.spark_launch.driver_java_options`).  A session's start and one small
job took 4.1 s instead of 7.1 (4.4 CPU-seconds instead of 8.0), which every restart, backfill
and test driver gains.

It is a start-up cache and nothing more: a JVM whose Java or jars differ from the recording's
says so in its log and loads its classes as before.  The archive is named after the pyspark
version and the Java runtime, so an upgrade of either records a new one.

    python -m include.runtime.spark_cds    # record it unless it is there (make setup)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from include.runtime.spark_launch import class_archive, launch_environment, spark_submit_command
from include.settings import Settings
from include.settings.base import PROJECT_ROOT

WARMUP_APP = PROJECT_ROOT / "spark_jobs" / "warmup.py"
RECORD_TIMEOUT = 600


def say(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def run_warmup(
    settings: Settings, java_options: str, timeout: float = RECORD_TIMEOUT, **run: Any
) -> subprocess.CompletedProcess[str]:
    """spark-submit of the warm-up app, its driver's JVM options exactly `java_options`."""
    return subprocess.run(
        spark_submit_command(
            settings, WARMUP_APP, conf={"spark.driver.extraJavaOptions": java_options}
        ),
        env={**os.environ, **launch_environment(settings)},
        cwd=PROJECT_ROOT,
        timeout=timeout,
        text=True,
        check=False,
        **run,
    )


def record(settings: Settings) -> bool:
    """Run the warm-up app with the archive recorded at its exit; True when it was."""
    archive = class_archive(settings)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    log = archive.with_suffix(".log")
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        done = run_warmup(
            settings, f"-XX:ArchiveClassesAtExit={partial}", stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        say(
            f"WARNING: the Spark drivers' class archive could not be recorded (log: {log}); "
            "drivers start without it, a few seconds slower"
        )
        return False
    partial.replace(archive)
    say(f"recorded the Spark drivers' class archive in {time.monotonic() - started:.0f} s")
    return True


def main() -> int:
    settings = Settings()
    archive = class_archive(settings)
    if archive.exists():
        return 0
    say("recording the classes a Spark driver loads, so that drivers start faster (once, ~30 s)")
    # Older archives (another pyspark or Java) are of no use to anyone.
    for old in archive.parent.glob("*.jsa"):
        old.unlink()
    record(settings)
    return 0  # set-up goes on either way: the archive only saves time


if __name__ == "__main__":
    sys.exit(main())
