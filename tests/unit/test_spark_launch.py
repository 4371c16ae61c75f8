"""The Spark drivers' JVM options: the setting's, then the class-data archive once recorded."""

from __future__ import annotations

from include.runtime.spark_launch import (
    class_archive,
    driver_java_options,
    launch_conf,
    spark_submit_command,
)
from include.settings import Settings
from include.settings.base import PROJECT_ROOT


def test_the_archive_is_added_only_once_recorded(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ECOM_TOOL_CACHE", str(tmp_path))
    monkeypatch.setenv("ECOM_SPARK__DRIVER_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1  -Xss4m")
    settings = Settings()
    archive = class_archive(settings)
    assert archive.parent.parent == tmp_path and not archive.exists()
    assert driver_java_options(settings) == "-XX:TieredStopAtLevel=1 -Xss4m"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"")
    assert driver_java_options(settings) == (
        f"-XX:TieredStopAtLevel=1 -Xss4m -XX:SharedArchiveFile={archive}"
    )


def test_no_options_no_conf_and_every_launch_passes_them(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ECOM_TOOL_CACHE", str(tmp_path))
    monkeypatch.setenv("ECOM_SPARK__DRIVER_JAVA_OPTIONS", "")
    assert "spark.driver.extraJavaOptions" not in launch_conf(Settings())
    monkeypatch.setenv("ECOM_SPARK__DRIVER_JAVA_OPTIONS", "-XX:+UseSerialGC")
    monkeypatch.setenv("ECOM_JAR_CACHE", str(tmp_path / "jars"))
    for group, jar in (("spark", "connector.jar"), ("spark-ecom", "ecom-avro.jar")):
        (tmp_path / "jars" / group).mkdir(parents=True)
        (tmp_path / "jars" / group / jar).write_bytes(b"")
    command = spark_submit_command(Settings(), PROJECT_ROOT / "app.py")
    assert "spark.driver.extraJavaOptions=-XX:+UseSerialGC" in command
    # The Avro decoder travels with the connectors.
    assert command[command.index("--jars") + 1].endswith("/spark-ecom/ecom-avro.jar")


def test_the_archive_depends_on_the_java_runtime(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ECOM_TOOL_CACHE", str(tmp_path))
    settings = Settings()
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    (java_home / "bin" / "java").write_bytes(b"")
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    first = class_archive(settings)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "other-jdk"))
    assert class_archive(settings) != first
