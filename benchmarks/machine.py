"""The machine and the versions a benchmark run measured on, for the report's header."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

from include.runtime.procs import PlatformError
from include.runtime.tools import jars
from include.settings import get_settings


def machine() -> dict:
    """CPUs, memory, operating system and the versions of what ran (Java, Kafka, Spark)."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java.splitlines()[0] if java else "unknown",
        "kafka": jar_version("kafka", "kafka-clients-"),
        "pyspark": version("pyspark"),
        "kafka-python": version("kafka-python"),
        "confluent-kafka": version("confluent-kafka"),
        "librdkafka": librdkafka_version(),
        "delta-spark": jar_version("spark", "delta-spark_2.13-"),
    }


def librdkafka_version() -> str:
    """The librdkafka that confluent-kafka runs (its wheel bundles one)."""
    import confluent_kafka

    return confluent_kafka.libversion()[0]


def jar_version(cache: str, prefix: str) -> str:
    """The version in a cached jar's name (the jars are what actually runs)."""
    try:
        cached = [jar for jar in jars(get_settings(), cache) if jar.name.startswith(prefix)]
    except PlatformError:
        cached = []
    return cached[0].stem.removeprefix(prefix) if cached else "unknown"
