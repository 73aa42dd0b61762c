"""The services of the chaos soak: what each kind runs and its manifest.

Every process of a service carries `SOAK_RUN` (the run's id) and
`SOAK_SVC` (the service) in its environment, inherited by everything it
starts, so the driver finds every process of a service in /proc (its
escapees included) without trusting Vigil's view. `SOAK_ROLE` tells the
service's own processes (`main`) from a double-forked escapee and from a
hook command. A leader is a `main` process that leads its own session
(Vigil starts each child in a session of its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# Kinds that the chaos may fault. `ticker`s are never faulted at the
# service level: their check hits measure the check schedule's lateness.
KINDS = [
    "crasher", "hanger", "flooder", "escapee", "stubborn", "oneshot",
    "slow", "notify", "hooked", "socket",
]

# Sockets are served by this tiny program (fd 3, LISTEN_FDS): it sends
# READY=1 once it serves and WATCHDOG=1 while it does.
NOTIFY_PY = r'''
import os, socket, sys, time, threading
def notify(msg):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(msg.encode(), path)
    except OSError:
        pass
    finally:
        s.close()
delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
time.sleep(delay)
if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
    srv = socket.socket(fileno=3)
    srv.setblocking(True)
    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                time.sleep(0.1)
                continue
            try:
                c.settimeout(2)
                c.recv(4096)
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            except OSError:
                pass
            finally:
                c.close()
    threading.Thread(target=serve, daemon=True).start()
notify("READY=1\nSTATUS=serving")
while True:
    notify("WATCHDOG=1")
    time.sleep(0.5)
'''


@dataclass
class Service:
    """One service directory the driver owns."""

    name: str
    kind: str
    gen: int = 0  # bumped by a valid manifest edit (SOAK_GEN): a restart
    dynamic: bool = False  # added by the chaos; may be removed again
    present: bool = True  # its directory exists
    operator_stopped: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def restarts_always(self) -> bool:
        return self.kind not in ("oneshot",)


def _toml_str(s: str) -> str:
    return json.dumps(s)


def _argv(items: list[str]) -> str:
    return "[" + ", ".join(_toml_str(i) for i in items) + "]"


def manifest(svc: Service, sdir: Path, run_id: str, hit_port: int, py: str) -> str:
    """The service.toml of `svc` in directory `sdir` (deterministic for its kind and gen)."""
    env = {
        "SOAK_RUN": run_id,
        "SOAK_SVC": svc.name,
        "SOAK_ROLE": "main",
        "SOAK_GEN": str(svc.gen),
    }
    lines: list[str] = []
    extra: list[str] = []
    restart = "always"
    grace = "1500ms"
    k = svc.kind
    if k == "crasher":
        # Crashes at a random point of its first seconds, with a child.
        cmd = ["/bin/sh", "-c", 'sleep "$(( $$ % 4 + 1 ))" & wait; exit $(( $$ % 3 + 1 ))']
    elif k == "hanger":
        # A heartbeat file: a SIGSTOP makes it stale, liveness notices.
        cmd = ["/bin/sh", "-c", "while :; do : > hb; sleep 0.3; done"]
        extra.append(
            '[checks.liveness]\ncheck = "builtin:file"\nperiod = "1s"\nfailure-threshold = 2\n'
            f'[checks.liveness.config]\npath = "{sdir}/hb"\nmax-age = "2s"\n'
        )
        extra.append('[grants]\npaths = ["."]\n')
    elif k == "flooder":
        # About 1 MB/s of output, some lines beyond the 16 KiB split.
        cmd = ["/bin/sh", "-c",
               "while :; do head -c 49152 /dev/urandom | base64 -w 0; echo; "
               "head -c 16384 /dev/urandom | base64; sleep 0.05; done"]
    elif k == "escapee":
        # Double fork + setsid: a process out of the group, in the cgroup.
        cmd = ["/bin/sh", "-c",
               "(SOAK_ROLE=escapee setsid sleep 100000 </dev/null >/dev/null 2>&1 &); exec sleep 100000"]
    elif k == "stubborn":
        # Ignores SIGTERM: every stop ends with SIGKILL after the grace.
        cmd = ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
        grace = "1s"
    elif k == "oneshot":
        cmd = ["/bin/sh", "-c", "sleep 0.2; exit 0"]
        restart = "on-failure"
    elif k == "slow":
        # A slow starter: ready (its file exists) 2 s after the spawn.
        cmd = ["/bin/sh", "-c", "sleep 2; : > started; exec sleep 100000"]
        # The previous life's file goes before the spawn, not after it
        # (the first startup check may come before the shell runs).
        extra.append('[hooks.pre-start]\ncommand = ' + _argv(["/usr/bin/env", "SOAK_ROLE=hook", "/bin/rm", "-f", f"{sdir}/started"]) + '\n')
        extra.append(
            '[checks.startup]\ncheck = "builtin:file"\nperiod = "200ms"\nstartup-timeout = "20s"\n'
            f'[checks.startup.config]\npath = "{sdir}/started"\n'
        )
        extra.append('[grants]\npaths = ["."]\n')
    elif k == "notify":
        cmd = [py, "-c", NOTIFY_PY, "0.5"]
        lines.append("notify = true")
        lines.append('watchdog-sec = "3s"')
    elif k == "hooked":
        cmd = ["/bin/sh", "-c", "exec sleep 100000"]
        hook_env = ["/usr/bin/env", "SOAK_ROLE=hook", "/bin/sh", "-c"]
        extra.append('[hooks.pre-start]\ncommand = ' + _argv(hook_env + ["echo pre-start; sleep 0.1"]) + '\ntimeout = "5s"\n')
        extra.append('[hooks.post-start]\ncommand = ' + _argv(hook_env + ["echo post-start"]) + '\ntimeout = "5s"\n')
        extra.append('[hooks.pre-stop]\ncheck = "builtin:http"\ntimeout = "1s"\n'
                     f'[hooks.pre-stop.config]\nurl = "http://127.0.0.1:{hit_port}/hook/{svc.name}"\n')
        extra.append('[hooks.post-stop]\ncommand = ' + _argv(hook_env + ["echo post-stop"]) + '\ntimeout = "5s"\n')
        extra.append(f'[grants]\nhosts = ["http://127.0.0.1:{hit_port}"]\n')
    elif k == "socket":
        cmd = [py, "-c", NOTIFY_PY, "0.2"]
        lines.append("notify = true")
        lines.append('replace-timeout = "10s"')
        extra.append('[sockets.http]\nlisten = "127.0.0.1:0"\n')
    elif k == "ticker":
        cmd = ["/bin/sh", "-c", "exec sleep 100000"]
        extra.append(
            '[checks.liveness]\ncheck = "builtin:http"\nperiod = "1s"\ntimeout = "500ms"\n'
            'failure-threshold = 1000\n'
            f'[checks.liveness.config]\nurl = "http://127.0.0.1:{hit_port}/tick/{svc.name}"\n'
        )
        extra.append(f'[grants]\nhosts = ["http://127.0.0.1:{hit_port}"]\n')
    elif k == "sleeper":
        # The 1,000-service run: a sleep and a liveness check each.
        cmd = ["/bin/sh", "-c", "exec sleep 100000"]
        extra.append(
            '[checks.liveness]\ncheck = "builtin:http"\nperiod = "5s"\ntimeout = "2s"\n'
            'failure-threshold = 1000\n'
            f'[checks.liveness.config]\nurl = "http://127.0.0.1:{hit_port}/tick/{svc.name}"\n'
        )
        extra.append(f'[grants]\nhosts = ["http://127.0.0.1:{hit_port}"]\n')
    else:
        raise ValueError(f"unknown kind {k}")
    head = [
        f"command = {_argv(cmd)}",
        'inherit-env = ["PATH"]',
        "env = { " + ", ".join(f"{k_} = {_toml_str(v)}" for k_, v in env.items()) + " }",
        f'restart = "{restart}"',
        'backoff = ["0s", "500ms", "1s"]',
        f'stop-grace = "{grace}"',
    ] + lines
    # Tables after the top-level keys; one [grants] table at most.
    grants = [e for e in extra if e.startswith("[grants]")]
    rest = [e for e in extra if not e.startswith("[grants]")]
    if len(grants) > 1:
        raise ValueError("one [grants] table")
    return "\n".join(head) + "\n\n" + "\n".join(rest + grants)


def write(svc: Service, root: Path, run_id: str, hit_port: int, py: str) -> None:
    """Write `svc`'s directory atomically (a temp file renamed), as an editor would."""
    d = root / svc.name
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / ".service.toml.tmp"
    tmp.write_text(manifest(svc, d, run_id, hit_port, py))
    tmp.rename(d / "service.toml")
