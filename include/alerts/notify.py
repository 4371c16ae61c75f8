"""The alert channels, as Airflow notifiers: a JSON webhook and e-mail through the SMTP
provider.  Each is on only while ``[alerts]`` gives it a target; with none, alerts are
logged and go nowhere else.

E-mail goes through the SMTP provider's :class:`SmtpNotifier`, which reads the SMTP server
from an Airflow connection: :func:`alert_connections` builds it (and the dead-letter
watcher's Kafka connection) from the settings, and the platform puts both in Airflow's
environment, so nothing is typed into the UI and the password stays in the environment.
"""

from __future__ import annotations

import html
import json
import logging
from typing import TYPE_CHECKING, Any, cast

import requests
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk.bases.notifier import BaseNotifier

from include.alerts.messages import Alert
from include.settings import Settings
from include.settings.sections import AlertSettings

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)

SMTP_CONN_ID = "ecom_alerts_smtp"
DEAD_LETTER_CONN_ID = "ecom_dead_letter_watch"
# The watcher's consumer group: its committed offsets are where the watch goes on after a
# triggerer restart.
DEAD_LETTER_GROUP = "ecom-dead-letter-alerts"


class WebhookNotifier(BaseNotifier):
    """POSTs ``{"text": ..., "summary": ..., "link": ..., "kind": ...}`` as JSON to ``url``:
    what Slack and Teams incoming webhooks expect (they show ``text``), and plain enough
    for any receiver.  A reply other than 2xx is an error naming the status."""

    def __init__(self, url: str, alert: Alert, timeout: float) -> None:
        super().__init__()
        self.url = url
        self.alert = alert
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        """Send the alert (the context is not needed: the sentence is already made)."""
        reply = requests.post(
            self.url,
            data=json.dumps(self.alert.payload()),
            headers={"Content-Type": "application/json"},
            timeout=self.timeout,
        )
        if not reply.ok:
            raise RuntimeError(
                f"the alert webhook answered {reply.status_code} {reply.reason}: "
                f"{reply.text[:200]} (check [alerts] webhook_url)"
            )


def email_notifier(cfg: AlertSettings, alert: Alert) -> SmtpNotifier:
    """The SMTP provider's notifier for one alert: the sentence as the subject, the sentence
    and its link as the body."""
    body = (
        f"<p>{html.escape(alert.text)}</p>"
        f'<p><a href="{html.escape(alert.link, quote=True)}">{html.escape(alert.link)}</a></p>'
    )
    return SmtpNotifier(
        to=cfg.recipients,
        from_email=cfg.email_from,
        subject=f"[ecommerce pipeline] {alert.text}",
        html_content=body,
        smtp_conn_id=SMTP_CONN_ID,
    )


def channels(cfg: AlertSettings, alert: Alert) -> dict[str, BaseNotifier]:
    """The notifiers that are on, by name ({} when alerts are off)."""
    found: dict[str, BaseNotifier] = {}
    url = cfg.webhook_url.get_secret_value()
    if url:
        found["webhook"] = WebhookNotifier(url, alert, cfg.webhook_timeout_seconds)
    if cfg.smtp_host:
        found["e-mail"] = email_notifier(cfg, alert)
    return found


def send(settings: Settings, alert: Alert, context: Any = None) -> list[str]:
    """Send ``alert`` on every channel that is on; the names of those that took it.

    A channel that fails is logged and the others still get the alert: an alert must never
    fail the task that sends it.  The notifiers' ``notify`` is called directly, not through
    their template rendering: the sentence may quote an error holding ``{{``.
    """
    log.warning("alert: %s %s", alert.text, alert.link)
    delivered = []
    for name, notifier in channels(settings.alerts, alert).items():
        try:
            notifier.notify(cast("Context", context or {}))
        except Exception as error:  # any channel failure: log it, try the next one
            log.error("the alert did not go out by %s: %s", name, error)
        else:
            delivered.append(name)
    return delivered


def smtp_connection(cfg: AlertSettings) -> dict[str, Any]:
    """The Airflow connection of the SMTP server (the provider's fields), password included."""
    return {
        "conn_type": "smtp",
        "host": cfg.smtp_host,
        "port": cfg.smtp_port,
        "login": cfg.smtp_user,
        "password": cfg.smtp_password.get_secret_value(),
        "extra": {
            "from_email": cfg.email_from,
            "disable_ssl": cfg.smtp_security != "ssl",
            "disable_tls": cfg.smtp_security != "starttls",
            "timeout": 30,
            "retry_limit": 2,
        },
    }


def alert_connections(settings: Settings, kafka_default: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the alerts: the SMTP server (when e-mail is on) and
    the dead-letter watcher's Kafka consumer, ``kafka_default`` (its JSON) plus a consumer
    group of its own that starts at the end of the topic."""
    kafka = json.loads(kafka_default)
    kafka["extra"] = {
        **kafka.get("extra", {}),
        "group.id": DEAD_LETTER_GROUP,
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
    }
    env = {f"AIRFLOW_CONN_{DEAD_LETTER_CONN_ID.upper()}": json.dumps(kafka)}
    if settings.alerts.smtp_host:
        env[f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}"] = json.dumps(smtp_connection(settings.alerts))
    return env
