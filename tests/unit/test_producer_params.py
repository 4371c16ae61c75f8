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
        (
            ProducerParams(rate=10, event_format="csv"),
            "event_format must be one of platform, tutorial",
        ),
    ],
)
def test_invalid_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        params.validate()


def test_valid_parameters_pass():
    assert ProducerParams(rate=0.5, duration_seconds=0).validate().rate == 0.5


def test_both_event_formats_pass():
    for event_format in ("platform", "tutorial"):
        assert ProducerParams(rate=1, event_format=event_format).validate().event_format == (
            event_format
        )
