"""A Spark standalone cluster of the project's own: a master and workers, run by pyspark's
`spark-class`.  The cluster tests submit the streaming application to it."""

from __future__ import annotations

import os
from pathlib import Path

from include.runtime.service import Service
from include.runtime.spark_launch import spark_environment
from include.settings import Settings


class SparkDaemon(Service):
    """A Spark standalone daemon, run in the foreground by pyspark's own ``spark-class``."""

    def spark_class(self, main_class: str) -> list[str]:
        """The argv that runs `main_class` with pyspark's ``spark-class``."""
        home = Path(spark_environment(self.settings)["SPARK_HOME"])
        return [str(home / "bin" / "spark-class"), main_class]

    def environment(self) -> dict[str, str]:
        """This process's environment with the platform's Spark environment over it."""
        return {**os.environ, **spark_environment(self.settings)}


class SparkMaster(SparkDaemon):
    """A Spark standalone master."""

    def __init__(self, settings: Settings, port: int, webui_port: int) -> None:
        super().__init__("spark-master", settings, port)
        self.webui_port = webui_port
        self.url = f"spark://{settings.bind_host}:{port}"

    def command(self) -> list[str]:
        """The master on the platform's host at ``port``, its web UI at ``webui_port``."""
        return [
            *self.spark_class("org.apache.spark.deploy.master.Master"),
            *("--host", self.settings.bind_host, "--port", str(self.port)),
            *("--webui-port", str(self.webui_port)),
        ]

    def alive_workers(self) -> int:
        """Workers the master counts as ALIVE (from its JSON status page)."""
        import requests

        url = f"http://{self.settings.bind_host}:{self.webui_port}/json/"
        try:
            status = requests.get(url, timeout=3).json()
        except (requests.RequestException, ValueError):
            return 0
        return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")


class SparkWorker(SparkDaemon):
    """A Spark standalone worker registered with ``master``; executors run under it."""

    def __init__(
        self, settings: Settings, master: SparkMaster, index: int, port: int, webui_port: int
    ) -> None:
        super().__init__(f"spark-worker-{index}", settings, port, depends_on=("spark-master",))
        self.master = master
        self.webui_port = webui_port
        self.work_dir = settings.state / "spark" / self.name

    def command(self) -> list[str]:
        """The worker, registered with the master, offering 2 cores and 2 GB; makes its work dir."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return [
            *self.spark_class("org.apache.spark.deploy.worker.Worker"),
            self.master.url,
            *("--host", self.settings.bind_host, "--port", str(self.port)),
            *("--webui-port", str(self.webui_port), "--work-dir", str(self.work_dir)),
            *("--cores", "2", "--memory", "2g"),
        ]

    def healthy(self) -> bool:
        """It answers on its port and the master counts at least `index` live workers."""
        # Registered: the master counts as many live workers as have been started.
        index = int(self.name.rsplit("-", 1)[1])
        return self.answers() and self.master.alive_workers() >= index

    def start_timeout(self) -> float:
        """Seconds a worker gets to register: 90."""
        return 90.0
