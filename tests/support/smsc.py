"""A small store-and-forward SMSC for tests, built on the `smpp34` package's Server (an
SMPP implementation this project did not write). Run it as its own process so a test can
kill it with SIGKILL:

    python tests/support/smsc.py --port 2775 --password secret --store smsc.jsonl

- binds: a thin front checks the password of bind_* (smpp34's Server accepts anyone) and
  answers ESME_RINVPASWD itself; good binds are piped to the smpp34 Server;
- submit_sm: accepted with a fresh message id (or ESME_RTHROTTLED every Nth with
  --throttle-every, or above --max-rate per second), written to the store, and a
  delivery receipt is sent (text form, or text + receipted_message_id/message_state
  TLVs with --dlr-tlv) except for every Nth with --lose-receipts-every; with
  --resp-delay the submit_sm_resp goes that many seconds after the receipt (a receipt
  that outruns its submit's answer);
- query_sm: answered by the front from the store (smpp34's Server does not know it);
- receipts not yet acknowledged survive a restart (they are in the store) and go to the
  next ESME that binds;
- mobile-originated messages: JSON lines on stdin {"from", "to", "text"}; long texts are
  split with a UDH by smpplib.gsm (not by the code under test).

The store is JSON lines: {"ev": "submit", ...}, {"ev": "dlr", "id": ...} (receipt
acknowledged), {"ev": "mo", ...} (MO acknowledged)."""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

import smpp34
import smpplib.gsm

BIND_IDS = {0x00000001, 0x00000002, 0x00000009}
ESME_RINVPASWD = 0x0000000E
QUERY_SM = 0x00000003
ESME_RQUERYFAIL = 0x00000067
HEADER = struct.Struct(">IIII")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.submits: dict[str, dict[str, Any]] = {}
        self.dlr_done: set[str] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut by SIGKILL
                if row["ev"] == "submit":
                    self.submits[row["id"]] = row
                elif row["ev"] == "dlr":
                    self.dlr_done.add(row["id"])
        self._file = path.open("a")

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def pending_dlrs(self) -> list[dict[str, Any]]:
        return [row for mid, row in self.submits.items() if mid not in self.dlr_done]


class Smsc:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.store = Store(Path(args.store))
        self.server = smpp34.Server("127.0.0.1", args.inner_port, system_id="SMSC")
        self.esmes: dict[str, Any] = {}
        self.counter = 0
        self.instance = f"{int(time.time() * 1000) % 10**9:x}"
        self.submit_count = 0
        self.accepted = 0
        self.tokens = float(args.max_rate)  # token bucket of --max-rate, a second's burst
        self.tokens_at = time.monotonic()
        self.dlr_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.mo_tasks: set[asyncio.Task[None]] = set()

    def next_id(self) -> str:
        self.counter += 1
        return f"{self.instance}{self.counter:07x}"

    def current_esme(self) -> Any | None:
        for esme in reversed(list(self.esmes.values())):
            if esme.can_receive:
                return esme
        return None

    async def run(self) -> None:
        await self.server.start()
        front = await asyncio.start_server(self.front, "127.0.0.1", self.args.port)
        for row in self.store.pending_dlrs():
            self.dlr_queue.put_nowait(row)
        workers = [asyncio.create_task(self.dlr_worker()) for _ in range(self.args.dlr_workers)]
        stdin_task = asyncio.create_task(self.read_stdin())
        print("SMSC ready", flush=True)
        try:
            while True:
                event = await self.server.next()
                if isinstance(event, smpp34.SubmitSmEvent):
                    self.on_submit(event)
                elif isinstance(event, smpp34.Esme):
                    self.esmes[event.session_id] = event
                elif isinstance(event, smpp34.Unbound):
                    self.esmes.pop(event.session_id, None)
        finally:
            front.close()
            for w in workers:
                w.cancel()
            stdin_task.cancel()

    def over_rate(self) -> bool:
        rate = self.args.max_rate
        if not rate:
            return False
        now = time.monotonic()
        self.tokens = min(rate, self.tokens + (now - self.tokens_at) * rate)
        self.tokens_at = now
        if self.tokens < 1.0:
            return True
        self.tokens -= 1.0
        return False

    def on_submit(self, event: Any) -> None:
        self.submit_count += 1
        every = self.args.throttle_every
        if (every and self.submit_count % every == 0) or self.over_rate():
            self.store.write({"ev": "throttled", "dest": event.destination_addr})
            event.reject(smpp34.ESME_RTHROTTLED)
            return
        self.accepted += 1
        mid = self.next_id()
        row = {
            "ev": "submit",
            "id": mid,
            "src": event.source_addr,
            "dest": event.destination_addr,
            "esm": event.esm_class,
            "dc": event.data_coding,
            "rd": event.registered_delivery,
            "sm": event.short_message.hex(),
            "at": time.time(),
        }
        # Stored before the answer: a message the ESME was told about is never forgotten.
        self.store.write(row)
        self.store.submits[mid] = row
        if self.args.resp_delay:
            asyncio.get_running_loop().call_later(self.args.resp_delay, event.accept, mid)
        else:
            event.accept(mid)
        lose = self.args.lose_receipts_every
        if lose and self.accepted % lose == 0:
            self.store.write({"ev": "lost", "id": mid})
        elif event.registered_delivery & 0x01:
            self.dlr_queue.put_nowait(row)

    async def dlr_worker(self) -> None:
        while True:
            row = await self.dlr_queue.get()
            if self.args.dlr_delay:
                await asyncio.sleep(self.args.dlr_delay)
            while True:
                esme = self.current_esme()
                if esme is not None:
                    try:
                        resp = await esme.deliver_sm(**self.receipt(row))
                        if resp.is_success:
                            self.store.write({"ev": "dlr", "id": row["id"]})
                            self.store.dlr_done.add(row["id"])
                            break
                    except Exception as e:  # the session went away: try the next one
                        print(f"DLR {row['id']} not delivered: {e}", file=sys.stderr, flush=True)
                await asyncio.sleep(0.2)

    def receipt(self, row: dict[str, Any]) -> dict[str, Any]:
        stamp = time.strftime("%y%m%d%H%M", time.gmtime(row["at"]))
        stat = stat_of(row)
        text = (
            f"id:{row['id']} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{stamp} done date:{stamp} stat:{stat} err:000 text:"
        )
        kwargs: dict[str, Any] = {
            "destination_addr": row["src"],
            "short_message": text.encode(),
            "source_addr": row["dest"],
            "esm_class": 0x04,
        }
        if self.args.dlr_tlv:
            kwargs["tlvs"] = [
                smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, row["id"].encode() + b"\0"),
                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([2 if stat == "DELIVRD" else 5])),
            ]
        return kwargs

    async def read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            try:
                cmd = json.loads(line)
            except ValueError:
                continue
            task = asyncio.create_task(self.send_mo(cmd))
            self.mo_tasks.add(task)
            task.add_done_callback(self.mo_tasks.discard)

    async def send_mo(self, cmd: dict[str, Any]) -> None:
        parts, encoding_flag, msg_type_flag = smpplib.gsm.make_parts(cmd["text"])
        for part in parts:
            while True:
                esme = self.current_esme()
                if esme is not None:
                    try:
                        resp = await esme.deliver_sm(
                            destination_addr=cmd.get("to", "Callcard"),
                            short_message=part,
                            source_addr=cmd["from"],
                            source_addr_ton=1,
                            source_addr_npi=1,
                            esm_class=msg_type_flag,
                            data_coding=encoding_flag,
                        )
                        if resp.is_success:
                            break
                    except Exception as e:
                        print(f"MO not delivered: {e}", file=sys.stderr, flush=True)
                await asyncio.sleep(0.2)
        self.store.write({"ev": "mo", "from": cmd["from"], "text": cmd["text"]})

    async def front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Checks the bind's password, then pipes the session to the smpp34 Server."""
        try:
            header = await reader.readexactly(16)
            length, command_id, _status, sequence = struct.unpack(">IIII", header)
            body = await reader.readexactly(length - 16)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if command_id in BIND_IDS:
            fields = body.split(b"\0")
            password = fields[1].decode() if len(fields) > 1 else ""
            if password != self.args.password:
                resp_body = b"SMSC\0"
                writer.write(
                    struct.pack(
                        ">IIII",
                        16 + len(resp_body),
                        command_id | 0x80000000,
                        ESME_RINVPASWD,
                        sequence,
                    )
                    + resp_body
                )
                await writer.drain()
                writer.close()
                return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.args.inner_port)
        except OSError:
            writer.close()
            return
        up_writer.write(header + body)

        async def esme_to_smsc() -> None:
            try:
                while pdu := await read_pdu(reader):
                    _length, command_id, _status, sequence = HEADER.unpack_from(pdu)
                    if command_id == QUERY_SM:
                        self.store.write({"ev": "query", "id": pdu[16:].split(b"\0")[0].decode()})
                        writer.write(self.query_sm_resp(pdu[16:], sequence))
                    else:
                        up_writer.write(pdu)
                    await up_writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                up_writer.close()

        async def smsc_to_esme() -> None:
            # Whole PDUs only: the answers to query_sm go into the same stream.
            try:
                while pdu := await read_pdu(up_reader):
                    writer.write(pdu)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(esme_to_smsc(), smsc_to_esme())

    def query_sm_resp(self, body: bytes, sequence: int) -> bytes:
        mid = body.split(b"\0")[0]
        row = self.store.submits.get(mid.decode(errors="replace"))
        if row is None:
            return HEADER.pack(16, 0x80000003, ESME_RQUERYFAIL, sequence)
        state = 2 if stat_of(row) == "DELIVRD" else 5  # DELIVERED / UNDELIVERABLE
        resp = mid + b"\0" + b"\0" + bytes([state, 0])  # id, final_date "", state, error
        return HEADER.pack(16 + len(resp), 0x80000003, 0, sequence) + resp


def stat_of(row: dict[str, Any]) -> str:
    return "UNDELIV" if row["dest"].endswith("0000000") else "DELIVRD"  # unreachable


async def read_pdu(reader: asyncio.StreamReader) -> bytes:
    """One whole PDU, or b"" at the end of the stream."""
    try:
        head = await reader.readexactly(4)
        (length,) = struct.unpack(">I", head)
        return head + await reader.readexactly(length - 4)
    except asyncio.IncompleteReadError:
        return b""


class SmscProcess:
    """The SMSC above as a child process of the test, to start, kill and restart."""

    def __init__(self, store: Path, *extra: str, password: str = "secret") -> None:
        from support.peers import free_port

        self.store = store
        self.port = free_port()
        self.extra = extra
        self.password = password
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"smpp://callcard:{self.password}@127.0.0.1:{self.port}"

    async def start(self) -> None:
        from support.children import dies_with_us
        from support.peers import free_port

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--port",
            str(self.port),
            "--inner-port",
            str(free_port()),
            "--password",
            self.password,
            "--store",
            str(self.store),
            *self.extra,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=dies_with_us(),
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        if b"SMSC ready" not in line:
            raise RuntimeError(f"the test SMSC did not start: {line!r}")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    async def send_mo(self, sender: str, text: str, to: str = "Callcard") -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"from": sender, "to": to, "text": text}).encode() + b"\n")
        await self.proc.stdin.drain()

    def rows(self, ev: str) -> list[dict[str, Any]]:
        if not self.store.exists():
            return []
        out = []
        for line in self.store.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row["ev"] == ev:
                out.append(row)
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--inner-port", type=int, required=True)
    parser.add_argument("--password", default="secret")
    parser.add_argument("--store", required=True)
    parser.add_argument("--throttle-every", type=int, default=0)
    parser.add_argument("--max-rate", type=float, default=0.0)  # submit_sm/s, then throttled
    parser.add_argument("--lose-receipts-every", type=int, default=0)
    parser.add_argument("--dlr-tlv", action="store_true")
    parser.add_argument("--dlr-delay", type=float, default=0.0)
    parser.add_argument("--resp-delay", type=float, default=0.0)  # submit_sm_resp, seconds
    parser.add_argument("--dlr-workers", type=int, default=8)  # receipts in flight at once
    args = parser.parse_args()
    asyncio.run(Smsc(args).run())


if __name__ == "__main__":
    main()
