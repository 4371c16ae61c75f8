"""Start-up refuses clearly: busy ports and stale PID files; stop ends whole process groups."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from include.runtime.kafka import Kafka, new_cluster_id
from include.runtime.postgres import Postgres
from include.runtime.procs import (
    PidFile,
    PlatformError,
    kill_marked,
    port_owner,
    spawn,
    stop_tree,
)
from include.runtime.tools import java_binary
from include.settings import Settings
from include.settings.base import PROJECT_ROOT


@pytest.fixture
def settings(monkeypatch, tmp_path) -> Settings:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    return Settings()


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_port_owner_names_the_listener(busy_port):
    owner = port_owner("127.0.0.1", busy_port)
    assert owner is not None and "pid" in owner


def test_a_busy_port_refuses_start_with_the_fix(monkeypatch, busy_port, settings):
    monkeypatch.setenv("ECOM_KAFKA__PORT", str(busy_port))
    with pytest.raises(PlatformError, match=rf"port 127.0.0.1:{busy_port} is already in use"):
        Kafka(Settings()).check_can_start()


def test_a_stale_pid_file_refuses_start_and_says_run_make_down(settings):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    service = Postgres(settings)
    service.pid_file.write(dead.pid)
    with pytest.raises(PlatformError, match=r"stale PID file .* Run `make down`"):
        service.check_can_start()
    assert service.stop().startswith("removed stale PID file")
    assert service.pid() is None


def test_stop_tree_ends_children_in_their_own_process_group_too(tmp_path):
    # Like Airflow's task supervisors: a child that moved to a process group of its own.
    script = (
        "import os, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'],\n"
        "                 preexec_fn=lambda: os.setpgid(0, 0))\n"
        "time.sleep(300)\n"
    )
    parent = spawn([sys.executable, "-c", script], tmp_path / "log", {}, tmp_path, "m1")
    deadline = time.monotonic() + 10
    while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = psutil.Process(parent.pid).children()[0]
    assert os.getpgid(child.pid) != os.getpgid(parent.pid)
    stop_tree(parent.pid, timeout=5)
    parent.wait(5)
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_stop_tree_counts_an_unreaped_process_as_stopped(tmp_path):
    # The service's parent is a third process that never reaps it (as when a test or the
    # fault campaign restarted the service): once SIGTERM ends it, it is a zombie.
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'],\n"
        "                         start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        service = int(parent.stdout.readline())
        assert stop_tree(service, timeout=20) is False, "it ended on SIGTERM: nothing to kill"
        assert psutil.Process(service).status() == psutil.STATUS_ZOMBIE
    finally:
        parent.kill()
        parent.wait()


def test_kill_marked_finds_reparented_leftovers(tmp_path):
    marker = str(tmp_path)
    # A child that escapes its parent's process group, as a daemonising JVM could.
    script = (
        "import os,sys,time\n"
        "if os.fork() == 0:\n"
        "    os.setsid(); print(os.getpid(), flush=True); time.sleep(300)\n"
        "time.sleep(300)\n"
    )
    log = tmp_path / "log"
    parent = spawn([sys.executable, "-c", script], log, {}, tmp_path, marker)
    deadline = time.monotonic() + 10
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    escaped = int(log.read_text().split()[0])
    assert os.getpgid(escaped) != os.getpgid(parent.pid)
    ended = kill_marked(marker, timeout=5)
    assert any(f"pid {escaped} " in line for line in ended)
    assert any(f"pid {parent.pid} " in line for line in ended)
    parent.wait(5)
    assert not psutil.pid_exists(escaped) or psutil.Process(escaped).status() == "zombie"


def test_pid_file_round_trip(tmp_path):
    pid_file = PidFile(tmp_path / "x.pid")
    assert pid_file.read() is None
    pid_file.write(1234)
    assert pid_file.read() == 1234


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(PlatformError, match=r"Java 17\+ is needed .* set JAVA_HOME"):
        java_binary()


def test_old_java_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(PlatformError, match="is Java 11; Kafka 4 and Spark 4 need Java 17"):
        java_binary()


def test_setup_script_refuses_a_missing_java_with_a_message(tmp_path):
    """scripts/setup.sh runs before the venv exists, so it checks Java itself."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHON": sys.executable,
        "JAVA_HOME": str(tmp_path / "no-jdk"),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Java 17+ is required" in result.stderr


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch):
    # The storage tool parses "-t -xyz" as a missing value; 0xf8.. encodes to "-".
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=b"\x10" + bytes(15))
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))

    cluster_id = new_cluster_id()

    assert cluster_id == "EAAAAAAAAAAAAAAAAAAAAA"
    assert next(draws, None) is None, "every dashed draw should have been thrown away"


def test_the_broker_jvm_gets_the_configured_options(monkeypatch) -> None:
    monkeypatch.setenv("ECOM_KAFKA__BROKER_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1 -Xss2m")
    command = Kafka(Settings()).command()
    options = command[: command.index("-cp")]
    after_gc = options.index("-XX:+UseG1GC") + 1
    assert options[after_gc : after_gc + 2] == ["-XX:TieredStopAtLevel=1", "-Xss2m"]
    assert "-Xmx" + Settings().kafka.heap in options
    monkeypatch.setenv("ECOM_KAFKA__BROKER_JAVA_OPTIONS", "")
    empty = Kafka(Settings()).command()
    assert "-XX:TieredStopAtLevel=1" not in empty and "" not in empty
