#!/usr/bin/env python3
"""Restart latency from kernel timestamps (stdlib only, needs root).

The shared harness (../shared/peers/pbench.py) finds a restarted child by
scanning /proc in a loop, so its numbers include the scan (several ms on a
busy machine). This listens to the kernel's process events (the netlink
proc connector) instead: every fork, exec and exit comes with the kernel's
CLOCK_MONOTONIC timestamp. It runs beside the harness, passively, so Vigil
and the peers are measured in the same run by the same clock:

  procwatch.py record OUT.jsonl M1,M2,...   # until SIGTERM/SIGINT
  procwatch.py summarize OUT.jsonl [--json] # a markdown table (or JSON lines)

A restart is: a process whose argv holds MARKER is SIGKILLed (its exit
event), then a *new* process exec's with MARKER in its argv. "up" is the
killed child's uptime (exec to exit): under 1 s counts as "rapid".
For Vigil the fork event of the new child splits the time into the
supervisor's reaction (exit -> fork) and the child's setup (fork -> exec).
"""
import json, os, signal, socket, statistics, struct, sys, time

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_FORK = 0x1
PROC_EVENT_EXEC = 0x2
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def record(out, markers):
    marks = [m.encode() for m in markers]
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((os.getpid(), CN_IDX_PROC))
    op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
    cn = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
    s.send(struct.pack("=IHHII", 16 + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    forks = {}  # child tgid -> (ts, parent tgid, parent tid), recent only
    tracked = {}  # tgid -> marker
    lost = 0
    with open(out, "a") as f:
        def emit(**kw):
            f.write(json.dumps(kw) + "\n")
        while not stop:
            try:
                data = s.recv(65536)
            except InterruptedError:
                continue
            except OSError as e:  # ENOBUFS: the kernel dropped events
                lost += 1
                emit(ev="lost", error=str(e), ts=time.monotonic_ns())
                continue
            off = 0
            while off + 16 <= len(data):
                nlen = struct.unpack_from("=I", data, off)[0]
                if nlen < 16:
                    break
                base = off + 16 + 20  # nlmsghdr + cn_msg
                what, _cpu, ts = struct.unpack_from("=IIQ", data, base)
                ev = base + 16
                if what == PROC_EVENT_FORK:
                    ppid, ptgid, cpid, ctgid = struct.unpack_from("=IIII", data, ev)
                    if cpid == ctgid:
                        forks[ctgid] = (ts, ptgid, ppid)
                        if len(forks) > 4096:
                            for k in list(forks)[:2048]:
                                del forks[k]
                elif what == PROC_EVENT_EXEC:
                    pid, tgid = struct.unpack_from("=II", data, ev)
                    argv = cmdline(tgid)
                    m = next((m for m in marks if m in argv), None)
                    if m is not None and tgid not in tracked:
                        tracked[tgid] = m
                        fk = forks.get(tgid)
                        emit(ev="exec", pid=tgid, ts=ts, marker=m.decode(),
                             fork_ts=fk[0] if fk else None,
                             parent=fk[1] if fk else None,
                             parent_tid=fk[2] if fk else None)
                elif what == PROC_EVENT_EXIT:
                    pid, tgid, code, _sig = struct.unpack_from("=IIII", data, ev)
                    forks.pop(tgid, None)
                    if pid == tgid and tgid in tracked:
                        emit(ev="exit", pid=tgid, ts=ts, marker=tracked.pop(tgid).decode(),
                             status=code)
                off += (nlen + 3) & ~3
            f.flush()


def pct(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# The harness's argv markers (../shared/peers/run_*.sh, bench/run_vigil.sh).
NAMES = {"99951": "vigil", "99901": "supervisord", "99902": "circus", "99903": "runit",
         "99904": "s6", "99905": "pm2", "99906": "daemontools", "99907": "monit",
         "99908": "horust"}


def summarize(path, as_json):
    evs = [json.loads(l) for l in open(path) if l.strip()]
    lost = sum(1 for e in evs if e["ev"] == "lost")
    by_marker = {}
    for e in evs:
        if e["ev"] in ("exec", "exit"):
            by_marker.setdefault(e["marker"], []).append(e)
    rows = []
    for marker, es in by_marker.items():
        es.sort(key=lambda e: e["ts"])
        execs = {e["pid"]: e for e in es if e["ev"] == "exec"}
        groups = {}
        for i, e in enumerate(es):
            # SIGKILLed (wait status 9) and seen exec'ing: a measured kill.
            if e["ev"] != "exit" or e["status"] & 0x7F != 9 or e["pid"] not in execs:
                continue
            nxt = next((n for n in es[i + 1:] if n["ev"] == "exec" and n["pid"] != e["pid"]), None)
            if nxt is None or nxt["ts"] - e["ts"] > 10e9:
                continue
            up = (e["ts"] - execs[e["pid"]]["ts"]) / 1e9
            kind = "rapid" if up < 1.0 else "up 1.5 s"
            g = groups.setdefault(kind, {"lat": [], "react": [], "setup": []})
            g["lat"].append((nxt["ts"] - e["ts"]) / 1e6)
            if nxt.get("fork_ts") and nxt["fork_ts"] >= e["ts"]:
                g["react"].append((nxt["fork_ts"] - e["ts"]) / 1e6)
                g["setup"].append((nxt["ts"] - nxt["fork_ts"]) / 1e6)
        for kind, g in groups.items():
            row = {"marker": marker, "kind": kind, "n": len(g["lat"]),
                   "median_ms": round(statistics.median(g["lat"]), 2),
                   "p95_ms": round(pct(g["lat"], 0.95), 2),
                   "min_ms": round(min(g["lat"]), 2), "max_ms": round(max(g["lat"]), 2)}
            if g["react"]:
                row["exit_to_fork_median_ms"] = round(statistics.median(g["react"]), 2)
                row["fork_to_exec_median_ms"] = round(statistics.median(g["setup"]), 2)
            rows.append(row)
    if as_json:
        for r in rows:
            print(json.dumps(r))
    else:
        print("| supervisor | child killed | median ms | p95 ms | min–max ms | n "
              "| exit → fork (median) | fork → exec (median) |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {NAMES.get(r['marker'], r['marker'])} | {r['kind']} | {r['median_ms']} "
                  f"| {r['p95_ms']} | {r['min_ms']}–{r['max_ms']} | {r['n']} "
                  f"| {r.get('exit_to_fork_median_ms', '—')} | {r.get('fork_to_exec_median_ms', '—')} |")
    if lost:
        print(f"warning: {lost} netlink overruns (events lost)", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "record":
        # One comma-joined argument: a marker must never be a whole argv
        # element of this process, or the harness would take it for a child.
        record(sys.argv[2], [m for a in sys.argv[3:] for m in a.split(",") if m])
    elif len(sys.argv) >= 3 and sys.argv[1] == "summarize":
        summarize(sys.argv[2], "--json" in sys.argv[3:])
    else:
        sys.exit(__doc__)
