"""The servers bench/exec_probe.sh probes, in a process of their own.

An HTTP server answering every GET with `200 ok`, and a TCP listener that
accepts and closes. They run apart from the harness, on one asyncio loop
(no thread per connection), so that what a row measures is the client's
process: with the old in-process `http.server` (a Python thread and a
header parse per request) the server took about 0.7 ms of every HTTP
row, the same for curl and vigil, and hid the clients' difference. The
server's own time per request (connection accepted to response written)
is recorded and served at `GET /stats`, so the table can show it.

    python3 exec_probe_servers.py    # prints "HTTP_PORT TCP_PORT", serves until stdin closes
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


async def main() -> None:
    served: list[float] = []

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.perf_counter()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            if head.startswith(b"GET /stats "):
                ordered = sorted(served)
                body = json.dumps(
                    {
                        "requests": len(ordered),
                        "median_ms": statistics.median(ordered) * 1e3 if ordered else 0,
                        "p99_ms": ordered[len(ordered) * 99 // 100] * 1e3 if ordered else 0,
                    }
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
                return
            writer.write(RESPONSE)
            await writer.drain()
            served.append(time.perf_counter() - started)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def tcp(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    http_server = await asyncio.start_server(http, "127.0.0.1", 0, backlog=1024)
    tcp_server = await asyncio.start_server(tcp, "127.0.0.1", 0, backlog=1024)
    print(
        http_server.sockets[0].getsockname()[1],
        tcp_server.sockets[0].getsockname()[1],
        flush=True,
    )
    # Serve until the harness closes our stdin (it exited, or is done).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
