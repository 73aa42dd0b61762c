#!/usr/bin/env python3
"""The HTTP server of bench/replace.sh: takes fd 3 from LISTEN_FDS when
Vigil passes it (else binds 127.0.0.1:PORT itself, with SO_REUSEADDR),
says READY=1 when NOTIFY_SOCKET is set, and on SIGTERM stops accepting,
finishes the request at hand and exits (a drain)."""
import os, selectors, signal, socket, sys

stopping = False
def stop(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
if os.environ.get("LISTEN_PID") == str(os.getpid()):
    lsock = socket.socket(fileno=3)
else:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", int(sys.argv[1])))
    lsock.listen(1024)
lsock.setblocking(False)
if os.environ.get("NOTIFY_SOCKET"):
    u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    u.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
sel = selectors.DefaultSelector()
sel.register(lsock, selectors.EVENT_READ)
body = b"ok\n"
while not stopping:
    for _ in sel.select(timeout=0.05):
        try:
            conn, _ = lsock.accept()
        except (BlockingIOError, InterruptedError):
            continue
        conn.setblocking(True)
        conn.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n" + body)
        except OSError:
            pass
        conn.close()
