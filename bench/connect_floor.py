#!/usr/bin/env python3
"""The floor under the scale benchmark: what connecting and closing a TCP
socket RATE times a second costs with no supervisor around it.

On loopback the kernel does both ends of every handshake in the
connecting process's context, so its system time is the part of a
tcp check no supervisor can avoid. Writes a pbench.py-style `idle` row
(to $PB_OUT when set) whose label carries the user/system split.

usage: connect_floor.py PORT [--rate 1000] [--duration 30] [--label TEXT]
"""
import argparse
import json
import os
import socket
import time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--rate", type=int, default=1000)
ap.add_argument("--duration", type=float, default=30)
ap.add_argument("--label", default="floor")
a = ap.parse_args()

start = time.monotonic()
before = os.times()
due, done = start, 0
while (now := time.monotonic()) - start < a.duration:
    with socket.create_connection(("127.0.0.1", a.port), timeout=1):
        done += 1
    due += 1 / a.rate
    if due > now:
        time.sleep(due - now)
after = os.times()
elapsed = time.monotonic() - start
user = after.user - before.user
system = after.system - before.system
with open("/proc/self/smaps_rollup") as f:
    kib = {l.split(":")[0]: int(l.split()[1]) for l in f if l.endswith("kB\n")}
row = {
    "test": "idle",
    "label": f"{a.label}: {done / elapsed:.0f} connect+close/s, user {100 * user / elapsed:.1f} % + system {100 * system / elapsed:.1f} %",
    "children": 0,
    "duration_s": round(elapsed, 1),
    "cpu_pct": round(100 * (user + system) / elapsed, 3),
    "rss_mib": round(kib["Rss"] / 1024, 1),
    "pss_mib": round(kib["Pss"] / 1024, 1),
    "supervisor_procs": {"python3": 1},
}
line = json.dumps(row)
print(line)
if os.environ.get("PB_OUT"):
    with open(os.environ["PB_OUT"], "a") as f:
        f.write(line + "\n")
