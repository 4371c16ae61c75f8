"""What every settings model shares: the project's root, the shipped config file and its
values, the cron type, and :class:`Section`, the base of every ``[section]`` model."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import AfterValidator, BaseModel, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE_ENV = "ECOM_CONFIG_FILE"
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "platform.toml"

# What the producer writes: "platform" events (visits, include.generators.EventGenerator) or
# "tutorial" ones (the Kafka + Spark tutorial's own, include.generators.TutorialEventGenerator).
EventFormat = Literal["platform", "tutorial", "avro"]
EVENT_FORMATS: tuple[str, ...] = get_args(EventFormat)
# Everything the platform writes under the state dir (tables, checkpoints, logs, metrics)
# is for its own user and group: directories 0750, files 0640.
STATE_UMASK = 0o027
# The Airflow pool (one slot) the streaming task runs in; `make up` creates it.
STREAMING_POOL = "streaming"


@cache
def shipped_values() -> dict[str, Any]:
    """The shipped config/platform.toml: the value of every setting unless overridden."""
    with open(DEFAULT_CONFIG_FILE, "rb") as handle:
        return tomllib.load(handle)


def _shipped_section(section: str) -> dict[str, Any]:
    values: Any = shipped_values()
    for part in section.split(".") if section else ():
        values = values.get(part, {})
    # Sub-tables ([kafka.security] under [kafka]) are their own sections.
    return {k: v for k, v in values.items() if not isinstance(v, dict)}


def _cron(value: str) -> str:
    from croniter import croniter

    if not croniter.is_valid(value):
        raise ValueError(
            f"not a cron expression: {value!r}; five fields, minute hour day month weekday "
            "(UTC), e.g. '0 * * * *' for hourly"
        )
    return value


# A DAG's schedule: checked here, so a typo stops `make up` with this message instead of
# leaving the DAG out of Airflow with an import error.
Cron = Annotated[str, AfterValidator(_cron)]
# The same, or "" for never.
CronOrOff = Annotated[str, AfterValidator(lambda value: value and _cron(value))]


class Section(BaseModel):
    """A table of config/platform.toml; a key the caller leaves out takes the shipped value.

    So ``AnalyticsSettings(watermark_seconds=120)`` is the shipped analytics with one change,
    and a config file of one's own needs only the keys it changes.
    """

    section: ClassVar[str]

    def __init_subclass__(cls, section: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.section = section

    @classmethod
    def shipped(cls) -> Self:
        """The section with every key as shipped (a settings field's default)."""
        return cls.model_validate({})

    @model_validator(mode="before")
    @classmethod
    def _shipped_values_first(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {**_shipped_section(cls.section), **data}
        return data
