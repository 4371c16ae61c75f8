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
        home = Path(spark_environment(self.settings)["SPARK_HOME"])
        return [str(home / "bin" / "spark-class"), main_class]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **spark_environment(self.settings)}


class SparkMaster(SparkDaemon):
    """A Spark standalone master."""

    def __init__(self, settings: Settings, port: int, webui_port: int) -> None:
        super().__init__("spark-master", settings, port)
        self.webui_port = webui_port
        self.url = f"spark://{settings.bind_host}:{port}"

    def command(self) -> list[str]:
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
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return [
            *self.spark_class("org.apache.spark.deploy.worker.Worker"),
            self.master.url,
            *("--host", self.settings.bind_host, "--port", str(self.port)),
            *("--webui-port", str(self.webui_port), "--work-dir", str(self.work_dir)),
            *("--cores", "2", "--memory", "2g"),
        ]

    def healthy(self) -> bool:
        # Registered: the master counts as many live workers as have been started.
        index = int(self.name.rsplit("-", 1)[1])
        return self.answers() and self.master.alive_workers() >= index

    def start_timeout(self) -> float:
        return 90.0
