"""JSON-lines files that stay bounded: appended with size-based rotation, read from the end.

A file ``progress.jsonl`` grows until the next line would take it past ``max_bytes``; then
``progress.jsonl.1`` becomes ``.2`` and so on (the oldest beyond ``keep`` is deleted), the
file itself becomes ``.1``, and the line starts a new file.  Rotation is done by the one
writer, under its own lock, before it appends: a line is never split across two files and
none is lost.  A reader that opened the old file before the rename still reads it whole.

Readers ask for the newest lines (:func:`newest_lines`, newest first, read backwards in
blocks), a tail of bytes (:func:`tail_lines`) or every line (:func:`all_lines`), across the
current file and its rotated ones: what they read is bounded by what they show, never by
how long the platform has been up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

BLOCK = 64 * 1024


def rotated(path: Path, n: int) -> Path:
    """The ``n``-th rotated file of ``path`` (1: the newest)."""
    return path.with_name(f"{path.name}.{n}")


def chain(path: Path) -> list[Path]:
    """``path`` and its rotated files that exist, newest first."""
    found = [path] if path.exists() else []
    n = 1
    while rotated(path, n).exists():
        found.append(rotated(path, n))
        n += 1
    return found


def rotate(path: Path, keep: int) -> None:
    """Shift ``path`` to ``path.1`` (``.1`` to ``.2``, ...), deleting what is beyond ``keep``."""
    n = keep  # what is at or beyond the bound goes (an earlier, larger keep left more)
    while rotated(path, n).exists():
        rotated(path, n).unlink()
        n += 1
    for i in range(keep - 1, 0, -1):
        if rotated(path, i).exists():
            rotated(path, i).replace(rotated(path, i + 1))
    if path.exists():
        path.replace(rotated(path, 1))


def append_line(path: Path, line: str, max_bytes: int, keep: int) -> None:
    """Append ``line`` (no newline) to ``path``, rotating first if it would pass ``max_bytes``.

    The caller is the file's only writer (or holds the writers' lock)."""
    data = (line + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size and size + len(data) > max_bytes:
        rotate(path, keep)
    # One write of the whole line in append mode: a concurrent reader sees all of it or none.
    with open(path, "ab") as handle:
        handle.write(data)


def _reversed_lines(path: Path) -> Iterator[bytes]:
    """The lines of one file, last first, read backwards a block at a time."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(0, os.SEEK_END)
        position, rest = handle.tell(), b""
        while position > 0:
            step = min(BLOCK, position)
            position -= step
            handle.seek(position)
            parts = (handle.read(step) + rest).split(b"\n")
            rest = parts[0]
            for part in reversed(parts[1:]):
                if part:
                    yield part
        if rest:
            yield rest


def newest_lines(path: Path) -> Iterator[str]:
    """Every line of ``path`` and its rotated files, newest first, read lazily from the end:
    a caller that stops after n lines has read about n lines."""
    for member in chain(path):
        for line in _reversed_lines(member):
            yield line.decode("utf-8", "replace")


def tail_lines(path: Path, max_bytes: int) -> list[str]:
    """The lines within the last ``max_bytes`` of ``path`` and its rotated files, in file
    order (oldest first)."""
    found: list[str] = []
    budget = max_bytes
    for line in newest_lines(path):
        budget -= len(line) + 1
        if budget < 0:
            break
        found.append(line)
    found.reverse()
    return found


def all_lines(path: Path) -> list[str]:
    """Every line of ``path`` and its rotated files, in file order (oldest first)."""
    lines: list[str] = []
    for member in reversed(chain(path)):
        lines += member.read_bytes().decode("utf-8", "replace").splitlines()
    return lines


def records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects among ``lines``, in their order; a line cut by a tail or being
    written right now is skipped."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record
