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


def java_binary() -> str:
    """The `java` to run Kafka and Spark with (JAVA_HOME's, else PATH's), checked to be
    Java 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise PlatformError(
            f"Java {MIN_JAVA}+ is needed for Kafka and Spark but no `java` was found. "
            "Install a JDK (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME."
        )
    out = subprocess.run(
        [str(candidate), "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))
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
