"""The alerts' sentences and links, from facts alone (no I/O): each alert is one plain
sentence a person on call can act on, and a link to where the details are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HEALTH_PATH = "/ecom/health"
# Airflow's own fallback for [api] base_url (the task runner builds log links from it).
DEFAULT_BASE_URL = "http://localhost:8080/"
# An exception's first line, cut here: the sentence stays readable in a chat message.
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Alert:
    """One alert: its sentence, the link to the details, and what it is about (a short
    key such as ``task_failed``, for receivers that sort alerts)."""

    text: str
    link: str
    kind: str

    def payload(self) -> dict[str, str]:
        """The webhook's JSON body: Slack and Teams incoming webhooks show ``text``."""
        return {
            "text": f"{self.text} {self.link}",
            "summary": self.text,
            "link": self.link,
            "kind": self.kind,
        }


def base_url() -> str:
    """Airflow's [api] base_url, as the task runner's log links use it, without a slash."""
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=DEFAULT_BASE_URL).rstrip("/")


def health_link(base: str) -> str:
    """The pipeline health page under Airflow's base URL."""
    return f"{base.rstrip('/')}{HEALTH_PATH}"


def clock(epoch: float) -> str:
    """A moment as people read it in an alert: ``2026-05-01 10:02:03 UTC``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def first_line(error: BaseException | str | None) -> str:
    """An error's first line (with the first item when it opens a list), cut at
    :data:`MAX_ERROR_CHARS` ("" for none)."""
    if error is None:
        return ""
    lines = [ln.strip().lstrip("- ") for ln in str(error).splitlines() if ln.strip()]
    line = lines[0] if lines else type(error).__name__
    # "3 checks failed:" says little alone: the first item of its list goes with it.
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1]}"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def task_failed(context: dict[str, Any], held_back: int = 0) -> Alert:
    """A task failed for good (its retries used up): which one, of which run, and why;
    ``held_back`` earlier failures of it were not alerted (too soon after an alert)."""
    ti = context["ti"]
    error = first_line(context.get("exception"))
    tries = f" after {ti.try_number} tries" if (ti.try_number or 0) > 1 else ""
    text = f"Task {ti.task_id} of DAG {ti.dag_id} failed{tries} (run {ti.run_id})"
    if held_back:
        text += f", {held_back} more failure{'s' if held_back > 1 else ''} since the last alert"
    text += f": {error}" if error else ""
    if not text.endswith((".", "!", "?")):
        text += "."
    return Alert(text, ti.log_url, "task_failed")


def supervisor_acted(reasons: Sequence[str], others: Sequence[str], done: str, base: str) -> Alert:
    """The supervisor stopped or restarted streaming: the first query's verdict in its own
    words, the other queries it judged alike, and what it did."""
    text = f"Streaming supervisor: {reasons[0]}"
    if others:
        text += f" (also {', '.join(others)})"
    text += f"; {done}."
    return Alert(text, health_link(base), "supervisor")


def dead_letters(
    count: int, topic: str, since: float, held_back_until: float | None, base: str
) -> Alert:
    """``count`` records went to the dead-letter topic since ``since``."""
    noun = "dead letter" if count == 1 else "dead letters"
    text = f"{count:,} {noun} in {topic} since {clock(since)}"
    if held_back_until is not None:
        text += f" (the next alert comes no sooner than {clock(held_back_until)})"
    text += "; each has its reason in the dead_letters table."
    return Alert(text, health_link(base), "dead_letters")
