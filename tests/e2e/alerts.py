"""Alerts in the running platform: receivers the e2e platform fixture starts before
`make up` (their ECOM_ALERTS__* variables go into the platform's environment), and the
checks: silence before the faults, then the frozen driver's restart and the malformed
records' dead letters each reach both receivers with a link to the health page.

Wiring (tests/e2e/test_platform.py):
* the platform fixture: ``with alert_receivers() as alerts:`` around everything, and
  ``**alerts.env`` in the platform's env; yield ``alerts`` with the rest;
* before the fault campaign (step 9): ``check_silent_before_faults(alerts)``;
* after the campaign's assertions: ``check_alerts_after_campaign(alerts, settings)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from include.settings import Settings
from tests.conftest import poll
from tests.receivers import SmtpReceiver, WebhookReceiver

# Short, so the campaign's malformed records give an alert, and its tail another, in time.
DEAD_LETTER_INTERVAL_SECONDS = 30


@dataclass
class AlertReceivers:
    """The two running receivers and the variables that point the platform at them."""

    hook: WebhookReceiver
    mail: SmtpReceiver
    env: dict[str, str] = field(default_factory=dict)

    def kinds(self) -> list[str]:
        """The kind of every webhook alert received so far, in order."""
        return [body["kind"] for body in self.hook.bodies]


@contextmanager
def alert_receivers() -> Iterator[AlertReceivers]:
    """A webhook receiver and an SMTP server on loopback, for the platform's whole life."""
    with WebhookReceiver() as hook, SmtpReceiver() as mail:
        env = {
            **mail.env(),
            "ECOM_ALERTS__WEBHOOK_URL": hook.url,
            "ECOM_ALERTS__DEAD_LETTER_INTERVAL_SECONDS": str(DEAD_LETTER_INTERVAL_SECONDS),
        }
        yield AlertReceivers(hook, mail, env)


def check_silent_before_faults(alerts: AlertReceivers) -> None:
    """All was well so far (start, quality, the scheduled restart): nobody was paged."""
    assert alerts.hook.bodies == [], alerts.hook.bodies
    assert alerts.mail.messages == [], alerts.mail.subjects()


def check_alerts_after_campaign(alerts: AlertReceivers, settings: Settings) -> None:
    """The SIGSTOPped driver's restart and the dead letters each alerted, by webhook and by
    e-mail, with the health page's link (Airflow's base URL)."""
    health = f"http://{settings.bind_host}:{settings.airflow.port}/ecom/health"

    def wanted(bodies: list[dict]) -> bool:
        frozen = [b for b in bodies if b["kind"] == "supervisor" and "(frozen)" in b["summary"]]
        letters = [b for b in bodies if b["kind"] == "dead_letters"]
        return bool(frozen and letters)

    bodies = poll(
        lambda: list(alerts.hook.bodies),
        wanted,
        "a supervisor alert for the frozen driver and a dead-letter alert",
        timeout=DEAD_LETTER_INTERVAL_SECONDS * 3,
        interval=2,
    )
    for body in bodies:
        if body["kind"] in ("supervisor", "dead_letters"):
            assert body["link"] == health, body
            assert body["text"] == f"{body['summary']} {health}", body
    frozen = next(b for b in bodies if "(frozen)" in b.get("summary", ""))
    assert "stalled" in frozen["summary"] and "stopped driver pid" in frozen["summary"], frozen
    letters = next(b for b in bodies if b["kind"] == "dead_letters")
    assert f"in {settings.kafka.dead_letter_topic} since" in letters["summary"], letters
    # E-mail got the same sentences.
    subjects = alerts.mail.subjects()
    for body in (frozen, letters):
        assert f"[ecommerce pipeline] {body['summary']}" in subjects, subjects
