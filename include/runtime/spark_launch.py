"""How this project launches its Spark applications: one place for their paths, jars,
environment and confs.

The Airflow operator (`include.operators.SparkAppOperator`) and `launch_app`, which the
tests and benchmarks use outside Airflow, both submit with what is here, so a job runs the
same whichever started it.  The Spark standalone daemons and Airflow's environment take
SPARK_HOME from `spark_environment` too.  The Spark driver imports this module as well, so
it imports nothing heavy (no Airflow).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from include.runtime.procs import PlatformError
from include.runtime.tools import jars, java_candidate, venv_bin
from include.settings import Settings
from include.settings.base import PROJECT_ROOT, STATE_UMASK

STREAMING_APP = PROJECT_ROOT / "spark_jobs" / "streaming_app.py"
BACKFILL_APP = PROJECT_ROOT / "spark_jobs" / "backfill_app.py"
# Spark's file system (Hadoop's) sets modes itself, with umask 022 unless told otherwise.
# spark-submit must pass it: its own file system instance is the one the app goes on using.
SPARK_UMASK_CONF = {"spark.hadoop.fs.permissions.umask-mode": f"{STATE_UMASK:03o}"}


# The project's own UDF jar (jvm/avro-json, built by scripts/build-jvm.sh): the Avro decoding
# of spark_jobs.avro, in the JVM because the hot path has no Python worker.
PROJECT_JAR_GROUP = "spark-ecom"


def connector_jars(settings: Settings) -> list[Path]:
    """The Spark connector jars (Kafka, Delta Lake) and the project's UDF jar from the jar
    cache, for --jars or spark.jars; an error naming `make setup` when either is missing."""
    connectors = jars(settings, "spark")
    own = sorted((settings.jar_dir / PROJECT_JAR_GROUP).glob("*.jar"))
    if not own:
        raise PlatformError(
            f"the project's Spark UDF jar is not in {settings.jar_dir / PROJECT_JAR_GROUP}: "
            "run `make setup` (scripts/build-jvm.sh compiles it from jvm/avro-json with javac) "
            "and check its output for a compile error."
        )
    return [*connectors, *own]


def spark_environment(settings: Settings) -> dict[str, str]:
    """SPARK_HOME, interpreters and bind address for spark-submit from the virtualenv.

    pyspark's `spark-submit` script locates SPARK_HOME with whatever `python3` is first on
    PATH, which need not be the venv's; setting it explicitly makes the launch deterministic.
    SPARK_LOCAL_IP keeps the driver and its UI on the platform's interface (the UI binds
    0.0.0.0 without it).
    """
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise PlatformError("pyspark is not installed in this interpreter: run `make setup`")
    return {
        "SPARK_HOME": str(Path(spec.origin).parent),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": settings.bind_host,
    }


def launch_environment(settings: Settings) -> dict[str, str]:
    """What spark-submit runs with beside the caller's environment: `spark_environment`
    and the project on PYTHONPATH, so the driver imports `include` and `spark_jobs`."""
    return {**spark_environment(settings), "PYTHONPATH": str(PROJECT_ROOT)}


def class_archive(settings: Settings) -> Path:
    """Where `make setup` records the Spark drivers' class-data archive
    (include.runtime.spark_cds): one per pyspark version and Java runtime, since a JVM
    maps only an archive its own build and class path recorded."""
    java = java_candidate()
    runtime = os.path.realpath(java) if java else "no-java"
    digest = hashlib.sha256(runtime.encode()).hexdigest()[:10]
    version = importlib.metadata.version("pyspark")
    return settings.tool_dir / "spark-cds" / f"spark-{version}-java-{digest}.jsa"


def driver_java_options(settings: Settings) -> str:
    """``[spark] driver_java_options`` and, once recorded, the class-data archive: a driver
    maps the classes it needs instead of loading them from ~250 jars (a session's start
    took 4.1 s instead of 7.1).  A JVM that cannot use the archive (another Java, changed
    jars) says so in its log and starts as it would without it."""
    options = settings.spark.driver_java_options.split()
    archive = class_archive(settings)
    if archive.exists():
        options.append(f"-XX:SharedArchiveFile={archive}")
    return " ".join(options)


def launch_conf(settings: Settings) -> dict[str, str]:
    """The confs every launch passes: the virtualenv's interpreter for the driver and the
    executors, the project on the executors' PYTHONPATH, the state dir's umask and the
    driver's JVM options."""
    java_options = driver_java_options(settings)
    return {
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        # Executors on a standalone worker import the project too.
        "spark.executorEnv.PYTHONPATH": str(PROJECT_ROOT),
        **SPARK_UMASK_CONF,
        **({"spark.driver.extraJavaOptions": java_options} if java_options else {}),
    }


def ui_conf(settings: Settings) -> dict[str, str]:
    """The driver's Spark UI on ``[spark] ui_port`` (SPARK_LOCAL_IP keeps it on bind_host),
    with Spark's own Prometheus metrics beside the pages: ``/metrics/prometheus`` (driver,
    and per query with streaming metrics on) and ``/metrics/executors/prometheus``.

    A second driver on the same machine (a backfill while streaming runs) takes the next
    free port, as Spark does; the health page and `make up` link the configured one.
    """
    return {
        "spark.ui.port": str(settings.spark.ui_port),
        "spark.ui.prometheus.enabled": "true",
        "spark.sql.streaming.metricsEnabled": "true",
        # Metric names without the application id, so they survive a driver restart.
        "spark.metrics.namespace": "ecom",
        "spark.metrics.conf.*.sink.prometheusServlet.class": (
            "org.apache.spark.metrics.sink.PrometheusServlet"
        ),
        "spark.metrics.conf.*.sink.prometheusServlet.path": "/metrics/prometheus",
    }


def spark_ui_url(settings: Settings) -> str:
    """Where the streaming driver's Spark UI is while it runs."""
    return f"http://{settings.bind_host}:{settings.spark.ui_port}"


def spark_submit_command(
    settings: Settings,
    app: Path,
    *app_args: str,
    master: str = "local[2]",
    driver_memory: str = "1g",
    conf: Mapping[str, str] | None = None,
) -> list[str]:
    """The spark-submit argv for ``app``: the connector jars and `launch_conf`, with
    ``conf`` on top."""
    return [
        str(venv_bin() / "spark-submit"),
        "--master",
        master,
        "--driver-memory",
        driver_memory,
        "--jars",
        ",".join(str(j) for j in connector_jars(settings)),
        *(
            arg
            for key, value in {**launch_conf(settings), **(conf or {})}.items()
            for arg in ("--conf", f"{key}={value}")
        ),
        str(app),
        *app_args,
    ]


def launch_app(
    settings: Settings,
    app: Path,
    log_file: Path,
    *app_args: str,
    env: dict[str, str] | None = None,
    conf: Mapping[str, str] | None = None,
    **submit_options: str,
) -> subprocess.Popen:
    """Start the app with spark-submit in the background, outside Airflow, its output
    appended to log_file.  It runs in its own session so it can be killed as a whole."""
    environment = {**os.environ, **(env or {}), **launch_environment(settings)}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            spark_submit_command(settings, app, *app_args, conf=conf, **submit_options),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
