#!/usr/bin/env python3
"""Steady loopback HTTP load for bench/replace.sh: RATE requests/s to
127.0.0.1:PORT for at most SECONDS (bounded in count and time), one
connection per request (HTTP/1.0). Prints one JSON line: requests, failed
(refused / other), p50 and p99 latency in ms. Stops early when the file
STOPFILE exists."""
import json, os, socket, sys, threading, time

port, rate, seconds, stopfile = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
total = int(rate * seconds)
lat, refused, other = [], [0], [0]
lock = threading.Lock()
start = time.monotonic()
next_i = [0]

def one():
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        if not data.startswith(b"HTTP/1.0 200") and not data.startswith(b"HTTP/1.1 200"):
            raise OSError("bad answer")
    except ConnectionRefusedError:
        with lock:
            refused[0] += 1
        return
    except OSError:
        with lock:
            other[0] += 1
        return
    with lock:
        lat.append((time.monotonic() - t0) * 1000)

def worker():
    while True:
        with lock:
            i = next_i[0]
            next_i[0] += 1
        if i >= total or os.path.exists(stopfile):
            return
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        one()

threads = [threading.Thread(target=worker) for _ in range(32)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()
pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None
print(json.dumps({"requests": len(lat) + refused[0] + other[0], "ok": len(lat),
                  "refused": refused[0], "failed_other": other[0],
                  "p50_ms": pick(0.50), "p99_ms": pick(0.99)}))
