"""The declarations of include.analytics hold together: each analytic has a transform, an
oracle, and keys and a time column its table has."""

from __future__ import annotations

import inspect

import pytest

from include.analytics import ANALYTICS, DEAD_LETTERS, OUTPUTS, QUERIES, Analytic
from include.quality.checks import table_suites
from include.settings import Settings
from spark_jobs import transforms
from tests import oracle


def test_every_analytic_has_one_transform_and_one_oracle_and_nothing_else_has() -> None:
    assert set(transforms.TRANSFORMS) == set(oracle.EXPECTED) == {a.name for a in ANALYTICS}


@pytest.mark.parametrize("analytic", ANALYTICS, ids=lambda a: a.name)
def test_each_transform_takes_the_events_and_the_analytics_settings(analytic: Analytic) -> None:
    transform = transforms.transform_of(analytic)
    assert inspect.isfunction(transform)
    assert list(inspect.signature(transform).parameters) == ["events", "analytics"]


@pytest.mark.parametrize("output", OUTPUTS, ids=lambda o: o.name)
def test_keys_and_time_column_are_columns_of_the_table(output) -> None:
    assert output.keys and set(output.keys) <= set(output.columns)
    if isinstance(output, Analytic):
        assert output.time_column in output.columns


def test_one_query_per_output_with_the_dead_letters_last() -> None:
    assert len(set(QUERIES)) == len(QUERIES) == len(ANALYTICS) + 1
    assert QUERIES[-1] == DEAD_LETTERS.name


def test_every_output_has_quality_checks_with_its_keys_not_null() -> None:
    suites = table_suites(Settings())
    assert list(suites) == list(QUERIES)
    for output in OUTPUTS:
        checked = {c.columns for c in suites[output.name].checks}
        assert {(key,) for key in output.keys} <= checked, output.name
