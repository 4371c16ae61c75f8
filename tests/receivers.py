"""Real local receivers for the alert tests: an HTTP server that keeps every JSON body
POSTed to it, and an SMTP server (aiosmtpd) that keeps every message it is sent."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from include.runtime.procs import free_port


class WebhookReceiver:
    """An HTTP server on loopback that answers 200 to a POST and keeps its JSON body."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def texts(self) -> list[str]:
        """The ``text`` of every alert received, in order."""
        return [body["text"] for body in self.bodies]


class SmtpReceiver:
    """An SMTP server (no TLS, no login) on loopback that keeps every message."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.messages: list[EmailMessage] = []
        self.host = host
        self.port = free_port()
        kept = self.messages

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = message_from_bytes(envelope.content, policy=policy.default)
                message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
                kept.append(message)
                return "250 OK"

        self.controller = Controller(Handler(), hostname=host, port=self.port)

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def subjects(self) -> list[str]:
        """The subject of every message received, in order."""
        return [str(m["Subject"]) for m in self.messages]

    def body(self, index: int) -> str:
        """The text of message ``index`` (its HTML part)."""
        part = self.messages[index].get_body(("html", "plain"))
        return part.get_content() if part else ""

    def env(self, to: str = "oncall@example.com") -> dict[str, str]:
        """The ``ECOM_ALERTS__*`` variables that send alert e-mails here."""
        return {
            "ECOM_ALERTS__SMTP_HOST": self.host,
            "ECOM_ALERTS__SMTP_PORT": str(self.port),
            "ECOM_ALERTS__SMTP_SECURITY": "none",
            "ECOM_ALERTS__EMAIL_TO": to,
            "ECOM_ALERTS__EMAIL_FROM": "pipeline@example.com",
        }
