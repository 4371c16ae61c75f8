"""Producer parameters fail fast with a message that says what to fix."""

from __future__ import annotations

import pytest

from include.producer import ProducerParams


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (ProducerParams(rate=-5), "rate must be a positive number"),
        (ProducerParams(rate=0), "rate must be a positive number"),
        (ProducerParams(rate=10, duration_seconds=-1), "duration_seconds must be 0"),
        (ProducerParams(rate=10, users=0), "users and products must be at least 1"),
    ],
)
def test_invalid_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        params.validate()


def test_valid_parameters_pass():
    assert ProducerParams(rate=0.5, duration_seconds=0).validate().rate == 0.5
