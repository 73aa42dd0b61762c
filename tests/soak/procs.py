"""What /proc says about the soak's processes and about Vigil itself."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    state: str
    start_time: int  # clock ticks since boot: tells a reused pid apart
    service: str
    role: str
    cmdline: str

    @property
    def alive(self) -> bool:
        """Not a zombie, not dead: it can still do something."""
        return self.state not in ("Z", "X", "x")

    @property
    def leader(self) -> bool:
        return self.role == "main" and self.pid == self.sid

    def evidence(self) -> str:
        return (f"pid {self.pid} ppid {self.ppid} sid {self.sid} state {self.state} "
                f"start {self.start_time} svc {self.service} role {self.role}: {self.cmdline[:120]}")


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # The comm field may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(")") + 2:].split()
    # rest[0] = state (field 3), ppid field 4, session field 6, starttime field 22.
    return rest[0], int(rest[1]), int(rest[3]), int(rest[19])


def _environ(pid: int) -> dict[str, str] | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in data.split(b"\0"):
        if item.startswith(b"SOAK_"):
            k, _, v = item.partition(b"=")
            env[k.decode()] = v.decode("utf-8", "replace")
    return env


def scan(run_id: str) -> list[Proc]:
    """Every process of this run's services, alive or zombie.

    A pid listed here existed when /proc was listed; its state is read
    later, so two processes both reported alive were both alive at the
    moment of the listing (a process cannot come back from the dead)."""
    out: list[Proc] = []
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    me = os.getpid()
    for pid in pids:
        if pid == me:
            continue
        env = _environ(pid)
        if not env or env.get("SOAK_RUN") != run_id:
            continue
        st = _stat(pid)
        if st is None:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = ""
        state, ppid, sid, start = st
        out.append(Proc(pid, ppid, sid, state, start, env.get("SOAK_SVC", "?"),
                        env.get("SOAK_ROLE", "main"), cmd))
    return out


def alive_same(pid: int, start_time: int) -> bool:
    """Is the process `pid` that started at `start_time` still alive?"""
    st = _stat(pid)
    return st is not None and st[3] == start_time and st[0] not in ("Z", "X", "x")


def start_time(pid: int) -> int | None:
    st = _stat(pid)
    return None if st is None else st[3]


def rss_and_fds(pid: int) -> tuple[int, int] | None:
    """VmRSS in KiB and the number of open fds of `pid`."""
    try:
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                    break
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return rss, fds
