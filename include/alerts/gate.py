"""How often an alert may repeat: the last time each alert key was sent, in a JSON file
under the state dir (the supervisor looks every few seconds; a condition that lasts must
not page someone every few seconds)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from include.jsonfile import read_json, write_json

# An entry gates repeats within its interval only; older than this it gates nothing and is
# dropped at the next sending (keys carry driver pids: kept for ever, the file would grow
# with every restart of a month of uptime).
KEEP_SECONDS = 7 * 86400


def seconds_until_due(sent: dict[str, Any], key: str, interval: float, now: float) -> float:
    """Seconds before alert ``key`` may be sent again (0: now).  Pure: ``sent`` maps a key
    to ``{"at": epoch, ...}`` of its last sending."""
    last = sent.get(key, {}).get("at")
    if last is None:
        return 0.0
    return max(0.0, last + interval - now)


class Gate:
    """The sending record of a family of alerts, kept in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self) -> dict[str, Any]:
        """Key -> what was kept at its last sending (empty when nothing was sent yet)."""
        return read_json(self.path, {})

    def wait(self, key: str, interval: float, now: float) -> float:
        """Seconds before ``key`` may be sent again (0: now)."""
        return seconds_until_due(self.record(), key, interval, now)

    def held_back(self, key: str) -> int:
        """How many times ``key`` was held back since it was last sent."""
        return int(self.record().get(key, {}).get("held_back", 0))

    def hold_back(self, key: str) -> None:
        """Count one holding back of ``key``."""
        record = self.record()
        entry = record.setdefault(key, {})
        entry["held_back"] = int(entry.get("held_back", 0)) + 1
        write_json(self.path, record)

    def sent(self, key: str, now: float | None, **kept: Any) -> None:
        """Record that ``key`` was sent at ``now`` (None: not sent, only ``kept`` facts for
        the next time), with ``kept`` facts for the next time."""
        cutoff = (time.time() if now is None else now) - KEEP_SECONDS
        record = {
            k: v
            for k, v in self.record().items()
            if not isinstance(v.get("at"), (int, float)) or v["at"] >= cutoff
        }
        record[key] = {"at": now, **kept}
        write_json(self.path, record)
