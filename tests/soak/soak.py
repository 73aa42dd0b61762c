#!/usr/bin/env python3
"""Chaos soak of Vigil (issue 18 §1 and §3).

Runs the real `vigil run` with a few dozen services of mixed behaviour,
injects faults at random for a given time, loads the control socket and
the --http listener, and checks invariants continuously and at the end.
Every violation is a hard failure printed with its evidence (pids,
journal lines). Seeded: the seed is printed, `--seed` replays the same
choices (the machine's timing still differs).

    python3 tests/soak/soak.py --vigil target/release/vigil --duration 2m
    SEED=42 make soak DURATION=30m

Root is needed for the state directory's tmpfs (the disk-full fault);
without root that fault is skipped and said so. Loopback only.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import control  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import services  # noqa: E402
from journal import Entry, Follower  # noqa: E402

CONTROL_BOUND = 5.0  # seconds: a control command answers within this
RESTART_BOUND = 15.0  # seconds: a killed always-service is spawned again within this
EDIT_BOUND = 20.0  # seconds: a valid manifest edit is journaled as reloaded within this
STOP_SETTLE = 2.0  # seconds: a process seen right after a stop may still be in exit
JOURNAL_CATCH_UP = 3.0  # seconds: after the state fs is freed, for the journal to write what it kept back


def parse_duration(s: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    if s and s[-1] in units:
        return float(s[:-1]) * units[s[-1]]
    return float(s)


@dataclass
class Violation:
    name: str
    at: float  # seconds into the run
    message: str
    evidence: list[str]


@dataclass
class Window:
    """A time span (monotonic) in which some invariant does not apply."""

    start: float
    end: float | None = None


class HitServer:
    """The loopback HTTP server the checks and hooks call (hits.py, a
    process of its own): when each path was hit, read back from its log."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [os.path.realpath(sys.executable), str(Path(__file__).with_name("hits.py")), str(log)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"hits.py did not start: {line!r}")
        self.port = int(line)
        self.hits: dict[str, list[float]] = {}
        self.read_to = 0
        self.lock = threading.Lock()

    def get(self, path: str) -> list[float]:
        with self.lock:
            with open(self.log, "rb") as f:
                f.seek(self.read_to)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line being written is read next time
            self.read_to += end
            for line in data[:end].decode("ascii", "replace").splitlines():
                at, _, hit = line.partition(" ")
                self.hits.setdefault(hit, []).append(float(at))
            return list(self.hits.get(path, []))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seed: int = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
        self.rng = random.Random(self.seed)
        self.run_id = f"soak{os.getpid()}x{self.seed}"
        self.vigil_bin = str(Path(args.vigil).resolve())
        # The real file, not a symlink that a package manager may rewrite
        # under a running soak.
        self.py = os.path.realpath(sys.executable)
        self.root = Path(tempfile.mkdtemp(prefix="vigil-soak."))
        self.checks = self.root / "services"
        self.state = self.root / "state"
        self.out = Path(args.out).resolve() if args.out else self.root / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.sock = self.state / "control.sock"
        self.mounted = False
        self.hits = HitServer(self.root / "hits.log", dict(os.environ))
        self.http_port = 0
        self.vigil: subprocess.Popen[bytes] | None = None
        self.vigil_log = open(self.out / "vigil.log", "wb")
        self.t0 = time.monotonic()
        self.services: dict[str, services.Service] = {}
        self.violations: list[Violation] = []
        self.faults: dict[str, int] = {}
        self.journal = Follower(self.state)
        self.jlock = threading.Lock()
        self.samples: list[tuple[float, int, int, int]] = []  # (t, vigil pid, rss KiB, fds)
        self.instances: list[tuple[int, float]] = []  # (pid, started at)
        # Spans where the check schedule is not Vigil's to keep (Vigil
        # down, the checks directory gone) or the disk is full.
        self.down: list[Window] = []
        self.vanished: list[Window] = []
        self.full: list[Window] = []
        self.control_latencies: list[float] = []
        self.pending: list[tuple[float, int, str, Callable[[], None]]] = []
        self.pending_seq = 0
        self.expect_restart: dict[str, tuple[float, int, int]] = {}  # svc -> (deadline, journal seq, pid killed)
        self.touched: dict[str, float] = {}  # svc -> last time an operator-level fault touched it
        self.global_touch = 0.0  # last vigil-level fault (kill, restart, vanish)
        self.stop_sampler = threading.Event()
        self.sampler_lock = threading.RLock()  # held while the main loop changes what runs
        self.bystander: subprocess.Popen[bytes] | None = None
        self.load: control.Load | None = None
        self.dyn = 0
        self.last_vigil_kill = 0.0
        self.restarts_seen = 0  # kills of a leader followed by a spawn in time
        self.edits: dict[str, tuple[float, int]] = {}  # svc -> (deadline, journal seq at the edit)
        # Services whose manifest is broken now: a Vigil (re)started then
        # refuses the whole directory, as documented, so no restart then.
        self.broken: set[str] = set()
        self.suspect_twins: dict[str, tuple[float, list[procs.Proc]]] = {}

    # ------------------------------------------------------------------ util

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, msg: str) -> None:
        line = f"[{self.now():8.1f}s] {msg}"
        print(line, flush=True)

    def violate(self, name: str, message: str, evidence: list[str]) -> None:
        v = Violation(name, self.now(), message, evidence)
        self.violations.append(v)
        self.log(f"VIOLATION {name}: {message}")
        for e in evidence[:40]:
            print(f"    {e}", flush=True)

    def count(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1

    def later(self, delay: float, what: str, fn: Callable[[], None]) -> None:
        self.pending_seq += 1
        heapq.heappush(self.pending, (time.monotonic() + delay, self.pending_seq, what, fn))

    def run_due(self, all_now: bool = False) -> None:
        while self.pending and (all_now or self.pending[0][0] <= time.monotonic()):
            _, _, what, fn = heapq.heappop(self.pending)
            try:
                fn()
            except Exception as e:  # a scheduled undo must not end the soak
                self.log(f"scheduled {what} failed: {e!r}")

    def entries(self) -> list[Entry]:
        with self.jlock:
            self.journal.poll()
            return list(self.journal.entries)

    def journal_about(self, svc: str | None, n: int = 12, pids: set[int] | None = None) -> list[str]:
        out = []
        for e in reversed(self.entries()):
            if svc is not None and e.service != svc:
                continue
            if pids is not None and not any(e.obj.get(k) in pids for k in ("pid", "new_pid", "old_pid")):
                continue
            out.append(e.raw)
            if len(out) >= n:
                break
        return list(reversed(out))

    def vigil_up(self) -> bool:
        return self.vigil is not None and self.vigil.poll() is None

    def cli(self, *argv: str, bound: float = CONTROL_BOUND) -> tuple[int, str, float]:
        """A `vigil` client command against the running instance, timed."""
        t0 = time.monotonic()
        try:
            p = subprocess.run([self.vigil_bin, *argv, "--state-dir", str(self.state)],
                               capture_output=True, timeout=60)
            code, text = p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace").strip()
        except subprocess.TimeoutExpired:
            code, text = -1, "timed out after 60 s"
        took = time.monotonic() - t0
        if self.vigil_up():
            self.control_latencies.append(took)
            if took > bound:
                self.violate("control-latency", f"`vigil {' '.join(argv)}` took {took:.2f} s (bound {bound} s)",
                             [f"exit {code}: {text[:300]}"])
        return code, text, took

    # ------------------------------------------------------------- lifecycle

    def setup(self) -> None:
        self.checks.mkdir(parents=True)
        self.state.mkdir(parents=True)
        if os.geteuid() == 0 and not self.args.no_tmpfs:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.args.state_size}", "soak-state",
                                str(self.state)], capture_output=True)
            self.mounted = r.returncode == 0
            if not self.mounted:
                self.log(f"tmpfs mount failed ({r.stderr.decode().strip()}): disk-full fault skipped")
        else:
            self.log("not root (or --no-tmpfs): disk-full fault skipped")
        # A process that is no service's: no recovery may ever touch it.
        self.bystander = subprocess.Popen(["sleep", "1000000"], start_new_session=True,
                                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                               "SOAK_BYSTANDER": self.run_id})
        if self.args.services >= 100:
            kinds = ["sleeper"] * self.args.services
        else:
            kinds = [services.KINDS[i % len(services.KINDS)] for i in range(self.args.services)]
        kinds += ["ticker"] * self.args.tickers
        for i, k in enumerate(kinds):
            self.add_service(f"{k}{i}", k)
        # Pick a free loopback port for --http.
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.http_port = s.getsockname()[1]
        s.close()

    def add_service(self, name: str, kind: str, dynamic: bool = False) -> None:
        svc = services.Service(name, kind, dynamic=dynamic)
        self.services[name] = svc
        self.write_svc(svc)

    def write_svc(self, svc: services.Service) -> None:
        """Write its directory; while the checks directory is gone, once it is back."""
        if self.is_vanished():
            self.later(1.0, "write once back", lambda: self.write_svc(svc) if svc.present else None)
            return
        services.write(svc, self.checks, self.run_id, self.hits.port, self.py)

    def is_vanished(self) -> bool:
        return (self.root / "services.gone").exists() or not self.checks.exists()

    def is_full(self) -> bool:
        return bool(self.full) and self.full[-1].end is None

    def overdue(self, deadline: float) -> bool:
        """Whether an expectation read from the journal can be judged: its
        deadline passed, and the journal cannot still hold back the line
        that would meet it. The journal keeps lines back while the state fs
        is full and writes them within a second of room (JOURNAL_CATCH_UP),
        and the fault loop frees the fs only between faults, so a slow fault
        (a control command) can push the free past a deadline. Deferred,
        never excused."""
        if time.monotonic() < deadline:
            return False
        if not self.full:
            return True
        end = self.full[-1].end
        return end is not None and time.monotonic() - end >= JOURNAL_CATCH_UP

    def start_vigil(self) -> None:
        while (self.is_vanished() or self.broken) and self.pending:
            self.run_due()  # a Vigil refuses to start without its checks directory
            time.sleep(0.1)
        args = [self.vigil_bin, "run", "--checks", str(self.checks), "--state-dir", str(self.state),
                "--http", f"127.0.0.1:{self.http_port}", "--quiet"]
        self.vigil = subprocess.Popen(args, stdout=self.vigil_log, stderr=self.vigil_log, stdin=subprocess.DEVNULL)
        self.instances.append((self.vigil.pid, self.now()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.vigil.poll() is not None:
                raise RuntimeError(f"vigil exited at start with {self.vigil.returncode}; see {self.out}/vigil.log")
            if control.status(self.sock, timeout=5) is not None:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("vigil's control socket did not answer within 60 s")
        if self.down and self.down[-1].end is None:
            self.down[-1].end = time.monotonic()
        self.log(f"vigil up, pid {self.vigil.pid}")

    def mark_down(self) -> None:
        if not self.down or self.down[-1].end is not None:
            self.down.append(Window(time.monotonic()))

    def teardown(self) -> None:
        self.stop_sampler.set()
        if self.load:
            self.load.stop()
        self.run_due(all_now=True)
        if self.vigil_up() and self.vigil is not None:
            self.vigil.kill()
            self.vigil.wait()
        # Whatever is left of this run (a failed run, an escapee).
        for p in procs.scan(self.run_id):
            try:
                os.kill(p.pid, signal.SIGKILL)
            except OSError:
                pass
        if self.bystander:
            self.bystander.kill()
            self.bystander.wait()
        self.hits.close()
        if self.mounted:
            # Keep the journal and logs for the report, then unmount.
            for f in list(self.state.glob("journal*.jsonl")):
                shutil.copy(f, self.out / f.name)
            subprocess.run(["umount", "-l", str(self.state)], check=False)
        if not self.args.keep and self.root not in self.out.parents:
            shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------- sampling

    def sampler(self) -> None:
        while not self.stop_sampler.wait(self.args.sample_every):
            with self.sampler_lock:
                try:
                    self.sample_once()
                except Exception as e:
                    self.log(f"sampler: {e!r}")

    def sample_once(self) -> None:
        v = self.vigil
        if v is not None and v.poll() is None:
            rf = procs.rss_and_fds(v.pid)
            if rf:
                self.samples.append((self.now(), v.pid, rf[0], rf[1]))
        with self.jlock:
            self.journal.poll()
        ps = procs.scan(self.run_id)
        leaders: dict[str, list[procs.Proc]] = {}
        for p in ps:
            if p.alive and p.leader:
                leaders.setdefault(p.service, []).append(p)
        for svc, ls in leaders.items():
            if len(ls) < 2:
                self.suspect_twins.pop(svc, None)
                continue
            if self.replace_explains(svc, {p.pid for p in ls}):
                continue
            # The journal line of a replace may lag the spawn: look again.
            first = self.suspect_twins.get(svc)
            if first is None:
                self.suspect_twins[svc] = (time.monotonic(), ls)
                continue
            if time.monotonic() - first[0] < 3.0:
                continue
            still = [p for p in first[1] if procs.alive_same(p.pid, p.start_time)]
            if len(still) >= 2 and not self.replace_explains(svc, {p.pid for p in still}):
                self.violate("two-incarnations", f"{svc}: {len(still)} live leaders outside a replace",
                             [p.evidence() for p in still] +
                             self.journal_about(svc, 15))
            self.suspect_twins.pop(svc, None)

    def replace_explains(self, svc: str, pids: set[int]) -> bool:
        for e in reversed(self.entries()):
            if e.service == svc and e.kind == "replacing":
                if pids <= {e.obj.get("pid"), e.obj.get("new_pid")}:
                    return True
        return False

    # ---------------------------------------------------------------- faults

    def leaders(self, kinds: set[str] | None = None) -> list[procs.Proc]:
        return [p for p in procs.scan(self.run_id)
                if p.alive and p.leader and p.service in self.services
                and self.services[p.service].kind != "ticker"
                and (kinds is None or self.services[p.service].kind in kinds)]

    def fault_kill_leader(self) -> None:
        ls = self.leaders()
        if not ls:
            return
        p = self.rng.choice(ls)
        svc = self.services[p.service]
        seq = len(self.entries())
        try:
            os.kill(p.pid, signal.SIGKILL)
        except OSError:
            return
        self.count("kill -9 service")
        if svc.restarts_always and not svc.operator_stopped:
            self.expect_restart[p.service] = (time.monotonic() + RESTART_BOUND, seq, p.pid)

    def fault_kill_child(self) -> None:
        ps = [p for p in procs.scan(self.run_id) if p.alive and not p.leader and p.role != "hook"
              and p.service in self.services and self.services[p.service].kind != "ticker"]
        if not ps:
            return
        p = self.rng.choice(ps)
        try:
            os.kill(p.pid, signal.SIGKILL)
        except OSError:
            return
        self.count("kill -9 child/escapee")

    def fault_sigstop(self) -> None:
        ls = self.leaders()
        if not ls:
            return
        p = self.rng.choice(ls)
        try:
            os.kill(p.pid, signal.SIGSTOP)
        except OSError:
            return
        self.count("SIGSTOP (SIGCONT later)")

        def cont() -> None:
            try:
                os.kill(p.pid, signal.SIGCONT)
            except OSError:
                pass
        self.later(self.rng.uniform(0.5, 5.0), "SIGCONT", cont)

    def pick(self, pred: Callable[[services.Service], bool]) -> services.Service | None:
        c = [s for s in self.services.values() if s.present and s.kind != "ticker" and pred(s)]
        return self.rng.choice(c) if c else None

    def fault_edit_valid(self) -> None:
        s = self.pick(lambda s: True)
        if not s:
            return
        if self.is_vanished():
            return
        s.gen += 1
        self.edits[s.name] = (time.monotonic() + EDIT_BOUND, len(self.entries()))
        self.write_svc(s)
        self.touched[s.name] = time.monotonic()
        self.count("manifest edit (valid)")

    def fault_edit_broken(self) -> None:
        s = self.pick(lambda s: True)
        if not s:
            return
        if self.is_vanished():
            return
        path = self.checks / s.name / "service.toml"
        broken = self.rng.choice([
            'command = ["/bin/sh", "-c"\n',  # torn TOML
            'command = []\n',  # empty command
            'command = ["/bin/true"]\nrestart = "sometimes"\n',  # bad value
            'command = ["/bin/true"]\nunknown-key = 1\n',  # unknown key
            'command = ["/bin/true"]\nafter = ["no-such-service"]\n',
        ])
        tmp = path.with_name(".broken.tmp")
        tmp.write_text(broken)
        tmp.rename(path)
        self.broken.add(s.name)
        self.touched[s.name] = time.monotonic()
        self.count("manifest edit (broken)")

        def restore() -> None:
            self.broken.discard(s.name)
            if s.present:
                self.write_svc(s)
                self.touched[s.name] = time.monotonic()
        self.later(self.rng.uniform(1.0, 4.0), "restore manifest", restore)

    def fault_add_dir(self) -> None:
        if self.is_vanished() or sum(1 for s in self.services.values() if s.dynamic and s.present) >= self.args.max_dynamic:
            return
        self.dyn += 1
        kind = self.rng.choice(["crasher", "escapee", "stubborn", "hooked", "notify", "flooder"])
        name = f"dyn{self.dyn}-{kind}"
        self.edits[name] = (time.monotonic() + EDIT_BOUND, len(self.entries()))
        self.add_service(name, kind, dynamic=True)
        self.count("service dir added")

    def fault_remove_dir(self) -> None:
        s = self.pick(lambda s: s.dynamic)
        if not s or self.is_vanished():
            return
        shutil.rmtree(self.checks / s.name, ignore_errors=True)
        s.present = False
        self.touched[s.name] = time.monotonic()
        self.count("service dir removed")
        self.later(0.5, "removed service gone", lambda: self.check_gone(s.name, time.monotonic() + 20, "removed"))

    def check_gone(self, name: str, deadline: float, why: str) -> None:
        """No process of `name` is alive (hooks get until `deadline` too)."""
        if not self.vigil_up():
            return
        left = [p for p in procs.scan(self.run_id) if p.service == name and p.alive]
        if not left:
            return
        if time.monotonic() < deadline:
            self.later(0.5, "gone?", lambda: self.check_gone(name, deadline, why))
            return
        self.violate("alive-after-stop", f"{name}: {len(left)} process(es) alive after its {why}",
                     [p.evidence() for p in left] + self.journal_about(name, 12))

    def fault_ctl_stop(self) -> None:
        if self.is_vanished():
            return  # a start then fails (no working directory) and the command waits for it
        s = self.pick(lambda s: not s.operator_stopped)
        if not s:
            return
        self.touched[s.name] = time.monotonic()
        code, text, _ = self.cli("stop", s.name)
        self.count("vigil stop")
        if code != 0:
            return
        s.operator_stopped = True
        # Right after `vigil stop` answers: nothing of it may be left but a
        # post-stop hook.
        time.sleep(0.05)
        left = [p for p in procs.scan(self.run_id) if p.service == s.name and p.alive and p.role != "hook"]
        if left:
            time.sleep(STOP_SETTLE)
            left = [p for p in left if procs.alive_same(p.pid, p.start_time)]
        if left:
            self.violate("alive-after-stop", f"{s.name}: {len(left)} process(es) alive after `vigil stop` answered",
                         [p.evidence() for p in left] + [f"vigil stop: {text}"] + self.journal_about(s.name, 12))
        self.later(0.0, "hooks gone", lambda: self.check_gone(s.name, time.monotonic() + 15, "stop (hooks)"))

        def start() -> None:
            if s.present and s.operator_stopped and self.vigil_up():
                self.touched[s.name] = time.monotonic()
                code, _, _ = self.cli("start", s.name)
                self.count("vigil start")
                if code == 0:
                    s.operator_stopped = False
        self.later(self.rng.uniform(1.0, 6.0), "vigil start", start)

    def fault_ctl_restart(self) -> None:
        if self.is_vanished():
            return  # a start then fails (no working directory) and the command waits for it
        s = self.pick(lambda s: not s.operator_stopped)
        if not s:
            return
        self.touched[s.name] = time.monotonic()
        self.cli("restart", s.name)
        self.count("vigil restart")

    def fault_ctl_replace(self) -> None:
        if self.is_vanished():
            return  # a start then fails (no working directory) and the command waits for it
        s = self.pick(lambda s: s.kind == "socket" and not s.operator_stopped)
        if not s:
            return
        self.touched[s.name] = time.monotonic()
        self.cli("replace", s.name, bound=15.0)
        self.count("vigil replace")

    def fault_ctl_reload(self) -> None:
        self.cli("reload")
        self.count("vigil reload")

    def fault_sighup(self) -> None:
        if self.vigil_up() and self.vigil:
            self.vigil.send_signal(signal.SIGHUP)
            self.count("SIGHUP")

    def snapshot(self) -> list[procs.Proc]:
        return [p for p in procs.scan(self.run_id) if p.alive]

    def fault_kill_vigil(self) -> None:
        if (time.monotonic() - self.last_vigil_kill < self.args.vigil_kill_every or not self.vigil
                or self.is_full() or self.is_vanished() or self.broken):
            return  # a Vigil started without its checks directory refuses to run
        self.last_vigil_kill = time.monotonic()
        with self.sampler_lock:
            before = self.snapshot()
            old = self.vigil
            self.mark_down()
            old.kill()
            old.wait()
            self.global_touch = time.monotonic()
            self.count("kill -9 vigil + restart")
            # A moment for the pdeathsig to land and leave what it leaves.
            time.sleep(self.rng.uniform(0.0, 1.0))
            left = [p for p in before if procs.alive_same(p.pid, p.start_time)]
            seq = len(self.entries())
            self.start_vigil()
        self.check_recovery(before, left, seq)

    def check_recovery(self, before: list[procs.Proc], left: list[procs.Proc], seq: int) -> None:
        """The new instance stopped exactly what the old left behind."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            alive = [p for p in left if procs.alive_same(p.pid, p.start_time)]
            if not alive:
                break
            time.sleep(0.2)
        alive = [p for p in left if procs.alive_same(p.pid, p.start_time)]
        if alive:
            self.violate("recovery-missed", f"{len(alive)} process(es) of the killed instance still alive 20 s after restart",
                         [p.evidence() for p in alive])
        if self.bystander and self.bystander.poll() is not None:
            self.violate("recovery-overreach", "the bystander process (no service's) was killed", [])
        known = {p.pid for p in before}
        new = self.entries()[seq:]
        for e in new:
            if e.kind == "recovered" and e.obj.get("pid") not in known:
                self.violate("recovery-overreach", f"recovered pid {e.obj.get('pid')} was no process of the services",
                             [e.raw])

    def fault_restart_vigil(self) -> None:
        """`vigil shutdown`, check nothing is left, start again."""
        if (time.monotonic() - self.last_vigil_kill < self.args.vigil_kill_every or self.is_full()
                or self.is_vanished() or self.broken):
            return
        self.last_vigil_kill = time.monotonic()
        with self.sampler_lock:
            self.global_touch = time.monotonic()
            code, text, took = self.cli("shutdown", bound=30.0)
            self.count("vigil shutdown + start")
            if self.vigil:
                try:
                    self.vigil.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.violate("shutdown", "vigil did not exit within 30 s of `vigil shutdown`", [text])
                    self.vigil.kill()
                    self.vigil.wait()
            self.mark_down()
            self.check_all_gone("shutdown")
            self.start_vigil()

    def check_all_gone(self, why: str) -> None:
        left = [p for p in procs.scan(self.run_id) if p.alive]
        if left:
            time.sleep(STOP_SETTLE)
            left = [p for p in left if procs.alive_same(p.pid, p.start_time)]
        if left:
            self.violate("alive-after-stop", f"{len(left)} process(es) alive after vigil's {why}",
                         [p.evidence() for p in left])

    def fault_fill(self) -> None:
        if not self.mounted or self.is_full():
            return
        filler = self.state / "filler"
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
        except OSError:
            pass
        self.full.append(Window(time.monotonic()))
        self.count("state fs full")

        def free() -> None:
            try:
                filler.unlink()
            except OSError:
                pass
            self.full[-1].end = time.monotonic()
        self.later(self.rng.uniform(2.0, 8.0), "free fs", free)

    def fault_vanish(self) -> None:
        gone = self.root / "services.gone"
        if gone.exists():
            return
        with self.sampler_lock:
            self.checks.rename(gone)
            self.vanished.append(Window(time.monotonic()))
            self.global_touch = time.monotonic()
            self.count("checks dir vanished")

        # Back as it was (the same inodes), or as a fresh copy (new inodes:
        # a deploy that replaces the directory).
        copy = self.rng.random() < 0.5

        def back() -> None:
            with self.sampler_lock:
                if copy:
                    tmp = self.root / "services.new"
                    shutil.copytree(gone, tmp, symlinks=True)
                    tmp.rename(self.checks)
                    shutil.rmtree(gone, ignore_errors=True)
                    self.count("checks dir came back as a copy")
                else:
                    gone.rename(self.checks)
                self.global_touch = time.monotonic()
                self.vanished[-1].end = time.monotonic() + 5  # time to rescan

        self.later(self.rng.uniform(1.0, 5.0), "checks dir back", back)

    def fault_burst(self) -> None:
        if self.load:
            self.load.burst(self.args.burst)
            self.count(f"burst of {self.args.burst} status requests")

    # ------------------------------------------------------------ invariants

    def check_restarts(self) -> None:
        """A killed restart=always service is spawned again in time."""
        ents = None
        for name, (deadline, seq, pid) in list(self.expect_restart.items()):
            if ents is None:
                ents = self.entries()
            if any(e.service == name and e.kind in ("spawned", "spawn-error") for e in ents[seq:]):
                del self.expect_restart[name]
                self.restarts_seen += 1
                continue
            if not self.overdue(deadline):
                continue
            del self.expect_restart[name]
            kill_at = deadline - RESTART_BOUND
            s = self.services.get(name)
            if (self.touched.get(name, 0) >= kill_at - 1 or self.global_touch >= kill_at - 1
                    or s is None or not s.present or s.operator_stopped):
                continue  # an operator or Vigil-level fault got in between
            self.violate("missed-restart", f"{name}: leader {pid} killed, no new spawn within {RESTART_BOUND:.0f} s",
                         self.journal_about(name, 12))

    def check_edits(self) -> None:
        """A valid edit of a manifest is picked up (hot reload) in time."""
        if not self.edits:
            return
        ents = self.entries()
        for name, (deadline, seq) in list(self.edits.items()):
            if any(e.service == name and e.kind == "reloaded" for e in ents[seq:]):
                del self.edits[name]
                continue
            if not self.overdue(deadline):
                continue
            del self.edits[name]
            s = self.services.get(name)
            if (s is None or not s.present or self.is_vanished() or not self.vigil_up()
                    or self.global_touch >= deadline - EDIT_BOUND - 1):
                continue
            self.violate("edit-not-applied", f"{name}: a valid edit (or a new directory) was not reloaded "
                         f"within {EDIT_BOUND:.0f} s",
                         self.journal_about(name, 8) + self.journal_about(None, 6))

    def final_checks(self) -> None:
        ents = self.entries()
        for p in self.journal.problems:
            self.violate("journal-line", p, [])
        # Every spawn has its exit, within each instance that quit cleanly.
        inst: list[list[Entry]] = []
        for e in ents:
            if e.kind == "acquired" or not inst:
                inst.append([])
            inst[-1].append(e)
        self.lost_with_instance = 0
        for i, lines in enumerate(inst):
            quit_clean = any(e.kind == "quit" for e in lines)
            open_: dict[int, Entry] = {}
            for e in lines:
                pid = e.obj.get("pid")
                if e.kind == "spawned" and isinstance(pid, int):
                    open_[pid] = e
                elif e.kind == "replacing" and isinstance(e.obj.get("new_pid"), int):
                    open_[e.obj["new_pid"]] = e
                elif e.kind in ("exited", "recovered") and isinstance(pid, int):
                    open_.pop(pid, None)
            if quit_clean:
                for pid, e in open_.items():
                    self.violate("spawn-without-exit", f"instance {i}: pid {pid} spawned, no exit before quit",
                                 [e.raw] + self.journal_about(e.service, 8, {pid}))
            else:
                self.lost_with_instance += len(open_)
        if inst and not any(e.kind == "quit" for e in inst[-1]):
            self.violate("final-quit", "the last instance did not journal quit", [inst[-1][-1].raw])
        self.check_lateness()
        self.check_trend()

    def excluded(self, a: float, b: float) -> bool:
        for w in self.down + self.vanished:
            end = w.end if w.end is not None else float("inf")
            if a < end + 3 and b > w.start - 1:
                return True
        return False

    def check_lateness(self) -> None:
        self.lateness: list[float] = []
        # Only the never-faulted tickers: a faulted service's checks pause
        # while it restarts, as they should.
        period = 1.0
        for name, s in self.services.items():
            if s.kind != "ticker":
                continue
            hits = self.hits.get(f"/tick/{name}")
            for a, b in zip(hits, hits[1:]):
                if self.excluded(a, b):
                    continue
                # Due at most period + 10 % jitter + grid step after the last.
                late = (b - a) - period * 1.1 - min(0.1, period / 10)
                self.lateness.append(max(0.0, late))
                if late > period:
                    self.violate("late-check", f"{name}: liveness check {late:.2f} s late (period {period} s)",
                                 [f"hits at {a - self.t0:.2f}s and {b - self.t0:.2f}s into the run"])

    def check_trend(self) -> None:
        """RSS and fds flat: per instance that lived long enough, the
        median of its last third against that of its first third after
        warm-up."""
        self.trend: list[dict[str, Any]] = []
        by: dict[int, list[tuple[float, int, int, int]]] = {}
        for s in self.samples:
            by.setdefault(s[1], []).append(s)
        for pid, ss in by.items():
            ss = [s for s in ss if s[0] - ss[0][0] >= self.args.warmup]
            if len(ss) < 30 or ss[-1][0] - ss[0][0] < self.args.min_trend:
                continue
            third = len(ss) // 3
            med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            r0, r1 = med([s[2] for s in ss[:third]]), med([s[2] for s in ss[-third:]])
            f0, f1 = med([s[3] for s in ss[:third]]), med([s[3] for s in ss[-third:]])
            span = ss[-1][0] - ss[0][0]
            t = {"pid": pid, "span_s": round(span), "rss_kib": [r0, r1], "fds": [f0, f1]}
            self.trend.append(t)
            if r1 > r0 * 1.25 + 8192:
                self.violate("rss-growth", f"vigil {pid}: RSS {r0} -> {r1} KiB over {span:.0f} s", [json.dumps(t)])
            if f1 > f0 * 1.25 + 16:
                self.violate("fd-growth", f"vigil {pid}: fds {f0} -> {f1} over {span:.0f} s", [json.dumps(t)])

    # ------------------------------------------------------------------ main

    FAULTS: list[tuple[str, float]] = [
        ("fault_kill_leader", 10), ("fault_kill_child", 5), ("fault_sigstop", 6),
        ("fault_edit_valid", 4), ("fault_edit_broken", 3), ("fault_add_dir", 3), ("fault_remove_dir", 3),
        ("fault_ctl_stop", 4), ("fault_ctl_restart", 4), ("fault_ctl_replace", 3), ("fault_ctl_reload", 3),
        ("fault_sighup", 1), ("fault_kill_vigil", 2), ("fault_restart_vigil", 1), ("fault_fill", 1.5),
        ("fault_vanish", 1), ("fault_burst", 1.5),
    ]

    def run(self) -> int:
        print(f"soak: seed {self.seed} (SEED={self.seed} replays), duration {self.args.duration}, "
              f"{self.args.services} services, dir {self.root}, out {self.out}", flush=True)
        self.setup()
        self.start_vigil()
        self.last_vigil_kill = time.monotonic()
        threading.Thread(target=self.sampler, daemon=True).start()
        if self.args.load:
            self.load = control.Load(self.sock, ("127.0.0.1", self.http_port), self.args.followers,
                                     self.args.slowloris, self.vigil_up)
            self.load.start()
        names = [n for n, _ in self.FAULTS]
        weights = [w for _, w in self.FAULTS]
        if self.args.services >= 100:
            weights = [w if n in ("fault_kill_leader", "fault_sigstop", "fault_ctl_restart", "fault_ctl_reload",
                                  "fault_kill_vigil", "fault_burst", "fault_kill_child") else 0
                       for n, w in self.FAULTS]
        end = time.monotonic() + parse_duration(self.args.duration)
        last_report = time.monotonic()
        try:
            while time.monotonic() < end:
                self.run_due()
                if not self.vigil_up():
                    code = self.vigil.returncode if self.vigil else None
                    self.violate("vigil-died", f"vigil exited on its own (status {code})",
                                 self.journal_about(None, 10))
                    self.mark_down()
                    self.start_vigil()
                fault = self.rng.choices(names, weights)[0]
                getattr(self, fault)()
                self.check_restarts()
                self.check_edits()
                time.sleep(self.rng.uniform(0.2, self.args.gap))
                if time.monotonic() - last_report > 60:
                    last_report = time.monotonic()
                    self.log(f"{sum(self.faults.values())} faults, {len(self.violations)} violations, "
                             f"{len(self.entries())} journal lines")
            self.run_due(all_now=True)
            # Let everything settle, then a clean shutdown with nothing left.
            for s in self.services.values():
                if s.present and s.operator_stopped:
                    self.cli("start", s.name)
            time.sleep(3)
            self.check_restarts()
            if self.load:
                self.load.stop()
            self.stop_sampler.set()
            code, text, _ = self.cli("shutdown", bound=30.0)
            if self.vigil:
                try:
                    self.vigil.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.violate("shutdown", "vigil did not exit within 60 s of the final shutdown", [text])
            self.check_all_gone("final shutdown")
            self.final_checks()
        finally:
            try:
                summary = self.summary()
                (self.out / "summary.json").write_text(json.dumps(summary, indent=1))
                report.write(self.out, summary, self.samples)
            finally:
                self.teardown()
        print(json.dumps({k: v for k, v in self.summary().items() if k != "violations"}, indent=1))
        if self.violations:
            print(f"soak: FAILED with {len(self.violations)} invariant violation(s) (seed {self.seed})")
            for v in self.violations:
                print(f"  {v.at:8.1f}s {v.name}: {v.message}")
            return 1
        print(f"soak: ok, 0 invariant violations (seed {self.seed})")
        return 0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.control_latencies)
        pick = lambda xs, q: round(xs[min(len(xs) - 1, int(q * len(xs)))], 3) if xs else None  # noqa: E731
        late = sorted(getattr(self, "lateness", []))
        out: dict[str, Any] = {
            "seed": self.seed,
            "duration": self.args.duration,
            "elapsed_s": round(self.now(), 1),
            "services": self.args.services,
            "tickers": self.args.tickers,
            "faults": dict(sorted(self.faults.items())),
            "faults_total": sum(self.faults.values()),
            "journal_lines": len(self.journal.entries),
            "journal_unknown_kinds": self.journal.unknown_kinds,
            "vigil_instances": len(self.instances),
            "restarts_after_kill_seen": self.restarts_seen,
            "spawns_lost_with_killed_instance": getattr(self, "lost_with_instance", None),
            "control_cli_s": {"n": len(lat), "p50": pick(lat, 0.5), "p99": pick(lat, 0.99),
                              "max": round(lat[-1], 3) if lat else None},
            "check_lateness_s": {"n": len(late), "p50": pick(late, 0.5), "p99": pick(late, 0.99),
                                 "max": round(late[-1], 3) if late else None},
            "rss_kib": {"min": min((s[2] for s in self.samples), default=None),
                        "max": max((s[2] for s in self.samples), default=None)},
            "fds": {"min": min((s[3] for s in self.samples), default=None),
                    "max": max((s[3] for s in self.samples), default=None)},
            "trend": getattr(self, "trend", []),
            "violations_total": len(self.violations),
            "violations": [v.__dict__ for v in self.violations],
        }
        if self.load:
            st = self.load.stats
            bl = sorted(st.burst_latencies)
            out["load"] = {
                "followers": self.args.followers, "slowloris": self.args.slowloris, "burst": self.args.burst,
                "bursts": st.bursts, "burst_status_s": {"n": len(bl), "p50": pick(bl, 0.5), "p99": pick(bl, 0.99),
                                                       "max": round(bl[-1], 3) if bl else None},
                "burst_failures": st.burst_failures, "follow_lines": st.follow_lines,
                "follow_connects": st.follow_connects, "slowloris_connects": st.slow_connects,
                "slowloris_closed_by_server": st.slow_closed_by_server,
                "slowloris_longest_hold_s": round(st.slow_hold_max, 1),
            }
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vigil", default=os.environ.get("VIGIL"), required=os.environ.get("VIGIL") is None)
    ap.add_argument("--duration", default="2m")
    ap.add_argument("--seed", type=int, default=int(os.environ["SEED"]) if os.environ.get("SEED") else None)
    ap.add_argument("--services", type=int, default=30, help="faulted services (>= 100: sleepers only)")
    ap.add_argument("--tickers", type=int, default=4, help="never-faulted services timing the checks")
    ap.add_argument("--gap", type=float, default=1.5, help="at most this long between faults (s)")
    ap.add_argument("--vigil-kill-every", type=float, default=45.0,
                    help="at least this long between kills/restarts of vigil (s)")
    ap.add_argument("--max-dynamic", type=int, default=6)
    ap.add_argument("--state-size", default="128m")
    ap.add_argument("--no-tmpfs", action="store_true")
    ap.add_argument("--no-load", dest="load", action="store_false")
    ap.add_argument("--followers", type=int, default=100)
    ap.add_argument("--slowloris", type=int, default=200, help="half on the control socket, half on --http")
    ap.add_argument("--burst", type=int, default=300)
    ap.add_argument("--sample-every", type=float, default=1.0)
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--min-trend", type=float, default=60.0, help="shortest instance life the trend test judges (s)")
    ap.add_argument("--out", default=None, help="keep summary.json, samples.csv, rss.svg, vigil.log here")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
