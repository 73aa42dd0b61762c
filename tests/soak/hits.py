"""The soak's hit server, in a process of its own.

Every check and hook of the soak's services calls it; it records when each
path was hit, so a check's schedule is measured from outside Vigil. It
runs apart from the driver so that the driver's own work (a /proc scan of
a thousand services, following the journal, status bursts) never delays a
hit: in-process, at 1,000 services, the driver's busy interpreter made
the hits arrive late and the checks time out, and the lateness measured
was the driver's, not Vigil's.

    python3 hits.py LOG    # prints its port, then appends "MONOTONIC PATH" lines to LOG

CLOCK_MONOTONIC is one clock for every process, so the driver compares
these times with its own.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time


async def main(log_path: str) -> None:
    log = open(log_path, "a", buffering=1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            now = time.monotonic()
            parts = head.split(b" ", 2)
            path = parts[1].decode("ascii", "replace") if len(parts) > 1 else "?"
            log.write(f"{now:.6f} {path}\n")
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            pass  # a check that timed out hung up first: not the soak's concern
        finally:
            writer.close()

    async def orphaned() -> None:
        # The driver killed (or crashed): nobody reads the log any more.
        parent = os.getppid()
        while os.getppid() == parent:
            await asyncio.sleep(1)
        os._exit(0)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    watch = asyncio.create_task(orphaned())  # noqa: F841 (kept alive)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
