"""A bridge worker process: `python -m telephony.sip.worker`, configured by the JSON of
`config.WorkerConfig` in the environment variable SIP_WORKER_CONFIG.

The pool starts it and speaks to it through its stdin (commands) and stdout (events), one
JSON object a line (`messages`). The asyncio side here only relays between those pipes
and the pjsua thread (`endpoint.PjBridge`); pjsua's own output goes to stderr. The
worker stops when the pool says so, or when its stdin closes (the pool is gone): calls
still up are hung up and their recordings finalised on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from telephony.sip import messages as msg
from telephony.sip.config import CONFIG_VARIABLE, WorkerConfig
from telephony.sip.endpoint import PjBridge

log = logging.getLogger("telephony.sip.worker")


async def _relay(config: WorkerConfig, out_fd: int) -> None:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[msg.WorkerEvent] = asyncio.Queue()

    def emit(event: msg.WorkerEvent) -> None:  # called in the pjsua thread
        loop.call_soon_threadsafe(events.put_nowait, event)

    recordings = Path(config.recordings_dir)
    bridge = PjBridge(
        host=config.host,
        port=config.port,
        recordings_dir=recordings,
        emit=emit,
        max_calls=config.max_calls,
        tcp=config.tcp,
        login=config.login,
    )
    bridge.start()
    writer = os.fdopen(out_fd, "wb", buffering=0)

    async def forward() -> None:
        writer.write(
            msg.encode(
                msg.Ready(
                    address=f"{config.host}:{config.port}",
                    pid=os.getpid(),
                    max_calls=config.max_calls,
                )
            )
        )
        while True:
            event = await events.get()
            writer.write(msg.encode(event))

    reader = asyncio.StreamReader(limit=1 << 16)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    forwarding = asyncio.create_task(forward())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def commands() -> None:
        while line := await reader.readline():
            try:
                command = msg.decode(line)
            except msg.BadMessage as exc:
                log.error("%s", exc)
                continue
            if isinstance(command, msg.Stop):
                break
            bridge.submit(command)  # type: ignore[arg-type]
        stop.set()

    reading = asyncio.create_task(commands())
    await stop.wait()
    reading.cancel()
    await asyncio.to_thread(bridge.stop)
    await asyncio.sleep(0)  # the last events reach the pipe before it closes
    while not events.empty():
        with contextlib.suppress(OSError):
            writer.write(msg.encode(events.get_nowait()))
    forwarding.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await forwarding


def main() -> None:
    # From the environment, not the command line: it may hold the provider's password.
    config = WorkerConfig.from_json(os.environ[CONFIG_VARIABLE])
    # Our stdout is the pool's event pipe: anything else printing (pjsua) goes to stderr.
    Path(config.recordings_dir).mkdir(parents=True, exist_ok=True)
    out_fd = os.dup(1)
    os.dup2(2, 1)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s sip-worker[{config.port}] %(name)s: %(message)s",
    )
    asyncio.run(_relay(config, out_fd))


if __name__ == "__main__":
    main()
