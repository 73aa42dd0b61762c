"""Following Vigil's journal across rotations, and checking every line."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

KINDS = {
    "acquired", "spawned", "spawn-error", "check", "ready", "unready", "stopping",
    "killed", "exited", "restarting", "waiting", "gave-up", "warning", "reloaded",
    "orphan-reaped", "recovered", "hook", "quit", "replacing", "replaced",
    "replace-failed",
}
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@dataclass
class Entry:
    seq: int  # order in the journal, across files
    ts: float  # seconds since the epoch
    raw: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def service(self) -> str | None:
        s = self.obj.get("service")
        return s if isinstance(s, str) else None


def parse_ts(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


class Follower:
    """Reads `journal.jsonl` as it grows; on rotation (`journal.1.jsonl`
    then holds the inode it was reading) finishes the old file first, so no
    line is lost or read twice. Only whole lines are taken: a torn tail
    (a killed Vigil) is left for the next instance to truncate."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.inode: int | None = None
        self.offset = 0
        self.entries: list[Entry] = []
        self.problems: list[str] = []  # unparseable or malformed lines
        self.unknown_kinds: dict[str, int] = {}
        self._partial = b""

    def _read_from(self, path: Path, inode: int) -> bool:
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_ino != inode:
                    return False
                size = os.fstat(f.fileno()).st_size
                if size < self.offset:
                    # Truncated below what was read: a torn tail cut away.
                    self.offset = size
                    self._partial = b""
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return False
        self.offset += len(data)
        buf = self._partial + data
        *lines, self._partial = buf.split(b"\n")
        for line in lines:
            self._take(line)
        return True

    def poll(self) -> None:
        cur = self.dir / "journal.jsonl"
        try:
            ino = os.stat(cur).st_ino
        except OSError:
            return
        if self.inode is not None and ino != self.inode:
            # Rotated: the old inode is journal.1.jsonl now.
            self._read_from(self.dir / "journal.1.jsonl", self.inode)
            if self._partial:
                self.problems.append(f"torn line at rotation: {self._partial[:200]!r}")
            self._partial = b""
            self.offset = 0
        self.inode = ino
        self._read_from(cur, ino)

    def _take(self, line: bytes) -> None:
        seq = len(self.entries)
        text = line.decode("utf-8", "replace")
        try:
            obj = json.loads(text)
        except ValueError as e:
            self.problems.append(f"line {seq}: not JSON ({e}): {text[:200]}")
            return
        if not isinstance(obj, dict):
            self.problems.append(f"line {seq}: not an object: {text[:200]}")
            return
        ts = obj.get("ts")
        kind = obj.get("kind")
        if not isinstance(ts, str) or not TS.match(ts):
            self.problems.append(f"line {seq}: bad ts: {text[:200]}")
            return
        if not isinstance(kind, str):
            self.problems.append(f"line {seq}: no kind: {text[:200]}")
            return
        if kind not in KINDS:
            # Other work may add kinds; counted, not fatal.
            self.unknown_kinds[kind] = self.unknown_kinds.get(kind, 0) + 1
        svc = obj.get("service")
        if svc is not None and not isinstance(svc, str):
            self.problems.append(f"line {seq}: bad service: {text[:200]}")
        for key in ("pid", "new_pid", "old_pid", "code"):
            v = obj.get(key)
            if v is not None and not isinstance(v, int):
                self.problems.append(f"line {seq}: {key} not an integer: {text[:200]}")
        e = Entry(seq, parse_ts(ts), text, obj)
        if self.entries and e.ts < self.entries[-1].ts:
            self.problems.append(
                f"line {seq}: out of order ({ts} after {self.entries[-1].obj.get('ts')}): {text[:200]}")
        self.entries.append(e)
