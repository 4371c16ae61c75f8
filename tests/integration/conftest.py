"""A real Kafka 4 broker for the integration tests, on free ports, in a throw-away state dir.

The broker is the platform's own `Kafka` service, so the tests exercise the same start-up
code as `make up`.  Settings reach child processes (spark-submit) through ECOM_* variables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from include.runtime.kafka import Kafka
from include.runtime.postgres import Postgres
from include.runtime.procs import free_port
from include.runtime.registry import Registry
from include.settings import Settings, get_settings
from tests.integration.dataset import NAIVE_ZONE


@pytest.fixture(scope="session")
def platform_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("state")
    env = {
        "ECOM_STATE_DIR": str(state),
        "ECOM_KAFKA__PORT": str(free_port()),
        "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
        "ECOM_POSTGRES__PORT": str(free_port()),
        "ECOM_REGISTRY__PORT": str(free_port()),
        "ECOM_REGISTRY__MANAGEMENT_PORT": str(free_port()),
        # The data set's tutorial-format events carry zone-less times in this zone: a
        # half-hour offset, so a zone read as UTC would put them in the wrong windows.
        "ECOM_EVENTS__NAIVE_TIMEZONE": NAIVE_ZONE,
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


@pytest.fixture(scope="session")
def settings(platform_env) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def kafka(settings) -> Iterator[Kafka]:
    broker = Kafka(settings)
    broker.start()
    yield broker
    broker.stop(timeout=30)


@pytest.fixture(scope="session")
def postgres(settings) -> Iterator[Postgres]:
    """The platform's PostgreSQL: the schema registry's storage."""
    server = Postgres(settings)
    server.start()
    yield server
    server.stop(timeout=30)


@pytest.fixture(scope="session")
def registry(postgres, settings) -> Iterator[Registry]:
    """The platform's schema registry (Apicurio) on its PostgreSQL storage."""
    service = Registry(settings)
    service.start()
    yield service
    service.stop(timeout=30)


@contextmanager
def isolated_settings(tmp_path_factory, name: str) -> Iterator[Settings]:
    """Settings with a state dir and topics of their own, on the session's broker."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(tmp_path_factory.mktemp(f"{name}_state")))
        mp.setenv("ECOM_KAFKA__INPUT_TOPIC", f"{name}-events")
        mp.setenv("ECOM_KAFKA__DEAD_LETTER_TOPIC", f"{name}-events-dlq")
        mp.setenv("ECOM_KAFKA__CONTROL_TOPIC", f"{name}-events-control")
        mp.setenv("ECOM_KAFKA__OUTPUT_TOPIC_PREFIX", f"{name}.")
        yield Settings()
