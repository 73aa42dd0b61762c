"""Raw HTTP/1.1 clients of Vigil's control socket and --http listener,
for the load of issue 18 §3: bursts of status requests, journal
followers, slowloris connections. Raw sockets, not `vigil status`
processes: hundreds of processes at once would measure fork on a 2-core
machine, not Vigil."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


def _connect(target: Path | tuple[str, int], timeout: float) -> socket.socket:
    if isinstance(target, Path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(target) if isinstance(target, Path) else target)
    return s


def request(target: Path | tuple[str, int], method: str, path: str,
            timeout: float = 10.0) -> tuple[int, bytes]:
    """One request, `Connection: close`; the status and the body."""
    s = _connect(target, timeout)
    try:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: vigil\r\nConnection: close\r\n"
                  f"Content-Length: 0\r\n\r\n".encode())
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    finally:
        s.close()
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError(f"bad answer: {data[:100]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return status, body


def _dechunk(body: bytes) -> bytes:
    out = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            n = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if n == 0:
            break
        out.append(rest[:n])
        body = rest[n + 2:]
    return b"".join(out)


def status(sock: Path, timeout: float = 10.0) -> dict[str, Any] | None:
    try:
        code, body = request(sock, "GET", "/v1/status", timeout)
    except OSError:
        return None
    if code != 200:
        return None
    try:
        v = json.loads(body)
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


@dataclass
class LoadStats:
    """What the load clients saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    burst_latencies: list[float] = field(default_factory=list)  # seconds, answered
    burst_failures: int = 0  # refused or failed while Vigil was up
    bursts: int = 0
    follow_lines: int = 0
    follow_connects: int = 0
    slow_connects: int = 0
    slow_closed_by_server: int = 0
    slow_hold_max: float = 0.0  # longest a slowloris connection stayed open


class Load:
    """Persistent journal followers and slowloris clients, plus bursts of
    concurrent status requests on demand. Bounded: a fixed number of
    threads, each with at most one connection, all stopped by `stop()`."""

    def __init__(self, sock: Path, http: tuple[str, int], followers: int, slowloris: int,
                 up: Callable[[], bool]) -> None:
        self.sock = sock
        self.http = http
        self.n_follow = followers
        self.n_slow = slowloris
        self.up = up
        self.stats = LoadStats()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        threading.stack_size(256 * 1024)
        for i in range(self.n_follow):
            self._spawn(self._follow, i)
        for i in range(self.n_slow):
            target: Path | tuple[str, int] = self.sock if i % 2 == 0 else self.http
            self._spawn(self._slowloris, target)

    def _spawn(self, fn: Callable[..., None], arg: Any) -> None:
        t = threading.Thread(target=fn, args=(arg,), daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=15)

    def _follow(self, i: int) -> None:
        while not self.stopping.is_set():
            if not self.up():
                self.stopping.wait(0.5)
                continue
            try:
                s = _connect(self.sock, 2.0)
            except OSError:
                self.stopping.wait(0.5)
                continue
            with self.stats.lock:
                self.stats.follow_connects += 1
            try:
                s.sendall(b"GET /v1/journal?lines=5&follow=true HTTP/1.1\r\nHost: vigil\r\n\r\n")
                s.settimeout(1.0)
                while not self.stopping.is_set():
                    try:
                        c = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not c:
                        break
                    with self.stats.lock:
                        self.stats.follow_lines += c.count(b"\n")
            except OSError:
                pass
            finally:
                s.close()
            self.stopping.wait(0.2)

    def _slowloris(self, target: Path | tuple[str, int]) -> None:
        """Headers one byte at a time, a byte every 2 s, never finished."""
        while not self.stopping.is_set():
            if not self.up():
                self.stopping.wait(0.5)
                continue
            try:
                s = _connect(target, 2.0)
            except OSError:
                self.stopping.wait(0.5)
                continue
            with self.stats.lock:
                self.stats.slow_connects += 1
            opened = time.monotonic()
            closed_by_server = False
            try:
                s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: vigil\r\n")
                s.settimeout(2.0)
                for b in b"X-Slow: " + b"a" * 10_000:
                    if self.stopping.is_set():
                        break
                    s.send(bytes([b]))
                    try:
                        if s.recv(1024) == b"":
                            closed_by_server = True
                            break
                    except socket.timeout:
                        pass
            except OSError:
                closed_by_server = True
            finally:
                s.close()
            held = time.monotonic() - opened
            with self.stats.lock:
                self.stats.slow_hold_max = max(self.stats.slow_hold_max, held)
                if closed_by_server:
                    self.stats.slow_closed_by_server += 1
            self.stopping.wait(0.2)

    def burst(self, n: int) -> None:
        """`n` concurrent status requests (as many `vigil status` at once)."""
        if not self.up():
            return
        barrier = threading.Barrier(n)
        results: list[float | None] = [None] * n

        def one(i: int) -> None:
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                return
            t0 = time.monotonic()
            try:
                code, _ = request(self.sock, "GET", "/v1/status", timeout=30)
                if code == 200:
                    results[i] = time.monotonic() - t0
            except OSError:
                pass

        ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=60)
        up = self.up()
        with self.stats.lock:
            self.stats.bursts += 1
            for r in results:
                if r is not None:
                    self.stats.burst_latencies.append(r)
                elif up:
                    self.stats.burst_failures += 1
