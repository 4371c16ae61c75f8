"""The schema registry service: which Java it runs on, and how it is told to keep its schemas
and its interfaces to itself (the command line, without starting it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

import include.runtime.registry as registry
from include.registry import RegistryError, _not_found
from include.runtime.procs import PlatformError
from include.settings import Settings


def fake_java(folder: Path, version: str) -> Path:
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2026-01-20' >&2\n")
    java.chmod(0o755)
    return java


def test_the_first_java_21_or_newer_is_taken(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("ECOM_TOOL_CACHE", str(tmp_path / "tools"))
    monkeypatch.setattr(registry, "JVM_ROOT", tmp_path / "jvm")
    fake_java(tmp_path / "jvm" / "java-17", "17.0.15")
    with pytest.raises(PlatformError, match="needs Java 21 or newer"):
        registry.registry_java(Settings())
    wanted = fake_java(tmp_path / "jvm" / "temurin-25", "25.0.2")
    assert registry.registry_java(Settings()) == wanted
    # JAVA_HOME first, when it is new enough.
    home = fake_java(tmp_path / "home", "21.0.8")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "home"))
    assert registry.registry_java(Settings()) == home


def test_storage_in_postgres_interfaces_on_loopback_password_not_on_the_command_line(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ECOM_TOOL_CACHE", str(tmp_path / "tools"))
    monkeypatch.setenv("ECOM_REGISTRY__PORT", "18081")
    monkeypatch.setenv("ECOM_REGISTRY__MANAGEMENT_PORT", "19081")
    settings = Settings()
    monkeypatch.setattr(registry, "registry_java", lambda _: Path("/java"))
    jar = registry.registry_home(settings) / "quarkus-run.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"")
    service = registry.Registry(settings)
    command = service.command()
    props = dict(a[2:].split("=", 1) for a in command if a.startswith("-D"))
    assert props["quarkus.http.host"] == props["quarkus.management.host"] == "127.0.0.1"
    assert (props["quarkus.http.port"], props["quarkus.management.port"]) == ("18081", "19081")
    assert props["apicurio.storage.kind"] == "sql"
    assert props["apicurio.storage.sql.kind"] == "postgresql"
    assert props["apicurio.datasource.url"].endswith(f":{settings.postgres.port}/registry")
    password = service.environment()["APICURIO_DATASOURCE_PASSWORD"]
    assert password and not any(password in a for a in command)
    assert service.url == "http://127.0.0.1:18081/apis/ccompat/v7"


def answer(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    response.url = "http://127.0.0.1:8081/wrong/subjects/x-value/versions"
    return response


def test_only_a_registry_404_means_not_found_a_bare_404_names_the_url_setting() -> None:
    settings = Settings()
    assert _not_found(
        answer(404, b'{"message": "Subject not found.", "error_code": 40401}'), settings
    )
    assert not _not_found(answer(200, b"[1, 2]"), settings)
    with pytest.raises(RegistryError, match=r"\[registry\] url .*apis/ccompat/v7"):
        _not_found(answer(404, b"<html>Resource not found</html>"), settings)
