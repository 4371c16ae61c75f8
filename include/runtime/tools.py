"""The tools the services run on: a Java runtime, the jar cache, the virtualenv's programs.

`make setup` provides them; each look-up here fails with a message saying what to install
or run when one is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from include.runtime.procs import PlatformError
from include.settings import Settings

MIN_JAVA = 17


def java_candidate() -> Path | None:
    """The `java` Kafka and Spark would run with: JAVA_HOME's, else PATH's (None: none on
    PATH); unchecked, see :func:`java_binary`."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        return Path(java_home) / "bin" / "java"
    found = shutil.which("java")
    return Path(found) if found else None


def java_major(java: Path) -> int:
    """The major version `java -version` reports ("1.8" is 8; 0 when it does not run)."""
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, check=False, timeout=30
        ).stderr
    except OSError:
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_binary() -> str:
    """The `java` to run Kafka and Spark with (:func:`java_candidate`), checked to be
    Java 17 or newer."""
    candidate = java_candidate()
    if not candidate or not Path(candidate).exists():
        raise PlatformError(
            f"Java {MIN_JAVA}+ is needed for Kafka and Spark but no `java` was found. "
            "Install a JDK (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME."
        )
    major = java_major(candidate)
    if major < MIN_JAVA:
        raise PlatformError(
            f"{candidate} is Java {major}; Kafka 4 and Spark 4 need Java {MIN_JAVA}+. "
            "Point JAVA_HOME at a newer JDK."
        )
    return str(candidate)


def jars(settings: Settings, group: str) -> list[Path]:
    """The jars `make setup` cached for ``group`` ("kafka": the broker's classpath,
    "spark": the Spark connectors), sorted; an error naming `make setup` when there are none."""
    found = sorted((settings.jar_dir / group).glob("*.jar"))
    if not found:
        raise PlatformError(
            f"no jars in {settings.jar_dir / group}: run `make setup` (it fetches them "
            "from Maven Central with mvn) and check its output for a download error."
        )
    return found


def venv_bin() -> Path:
    """The virtualenv's bin directory (airflow, spark-submit): the running interpreter's."""
    return Path(sys.executable).parent


PROMETHEUS_PACKAGE = "prometheus"


def prometheus_binary(settings: Settings) -> Path:
    """Debian's `prometheus` (the metrics test's real server), unpacked once into the tool
    cache from the package `apt-get download` fetches; no root, nothing installed system-wide.
    An error saying what to do when apt-get or dpkg-deb is missing or the download fails."""
    root = settings.tool_dir / PROMETHEUS_PACKAGE
    binary = root / "usr" / "bin" / "prometheus"
    if binary.exists():
        return binary
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise PlatformError(
            f"{' and '.join(missing)} not found: the Prometheus used by the metrics test comes "
            "from Debian's `prometheus` package. On Debian or Ubuntu run `make setup`; "
            f"elsewhere unpack a Prometheus 2.x release so that {binary} exists."
        )
    download = root.with_name(PROMETHEUS_PACKAGE + ".download")
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    fetched = subprocess.run(
        ["apt-get", "download", PROMETHEUS_PACKAGE],
        cwd=download,
        capture_output=True,
        text=True,
        check=False,
    )
    debs = sorted(download.glob(f"{PROMETHEUS_PACKAGE}_*.deb"))
    if fetched.returncode != 0 or not debs:
        raise PlatformError(
            f"`apt-get download {PROMETHEUS_PACKAGE}` failed: {fetched.stderr.strip()[-500:]} "
            "(is a Debian mirror reachable? `apt-get update` refreshes the package lists)"
        )
    # Unpacked beside the cache and renamed into place: a half-unpacked tree never counts.
    unpacked = download / "tree"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], check=True)
    shutil.rmtree(root, ignore_errors=True)
    unpacked.rename(root)
    shutil.rmtree(download, ignore_errors=True)
    return binary
