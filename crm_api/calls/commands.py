"""Commands to the PBX from processes without a PBX link: an API worker's click-to-call
reaches the active `callcard telephony` (or `callcard sip`) through Redis.

The worker (`RemotePbx`, a `Pbx` of `callcard api`, one per PBX name) writes the
command's state key ("waiting", expiring after CALLCARD_PBX_COMMAND_WAIT_S on Redis's
clock) and appends the command, which names its PBX, to that PBX's stream, read by a
consumer group that only the PBX's active process reads (`start_pbx_commands` runs under
the telephony lease, and reads the stream of its CALLCARD_PBX_NAME only): with several
PBXs, each takes only its own commands. A click-to-call goes to the PBX of the user's
extension (CALLCARD_PBX_EXTENSIONS, else CALLCARD_PBX_NAME), a hangup or transfer to the
PBX that carries the call (the call's `pbx`). The reader turns "waiting" into
"taken" atomically before it acts and pushes the outcome on the command's reply list;
the worker blocks on that list. A worker that hears nothing in time cancels the command
with the same atomic step, so each command is acted on at most once, even across a
failover, and the worker says which it was:

- taken and answered: the PBX's own answer (done, or its PbxError);
- never taken (no active process within the wait, or it died before reading): cancelled,
  never run later, `pbx_unavailable`;
- taken by a process that died before answering: `pbx_no_reply`, the call may be up.

The new active process reads the dead one's unacknowledged commands first (one consumer
name for whoever is active), skips those no longer waiting, and takes none before its PBX
link is up (a takeover's AMI login). Commands run one at a time, in order."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from crm_api.platform.deps import Services
from crm_api.platform.realtime.streams import RedisStream, consume_supervised
from telephony.pbx import OriginateRequest, Pbx, PbxError

log = logging.getLogger(__name__)
COMMANDS_STREAM = "callcard:pbx-commands:{pbx}"
GROUP = "pbx"
CONSUMER = "active"  # whoever holds the lease: it reads back what the last one left pending
STATE_KEY = "callcard:pbx-command:{id}"
REPLY_KEY = "callcard:pbx-command:{id}:reply"
REPLY_TTL_S = 60  # an answer nobody waits for any more
NO_REPLY = "pbx_no_reply"  # taken, never answered: the call may be up

# The reader's step: act only on a command still waiting (not expired nor cancelled).
_TAKE = """
if redis.call('GET', KEYS[1]) == 'waiting' then
    redis.call('SET', KEYS[1], 'taken', 'PX', ARGV[1])
    return 1
end
return 0
"""
# The worker's step when the wait is over: 1 when the command will never run.
_CANCEL = """
if redis.call('GET', KEYS[1]) == 'taken' then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


class RemotePbx:
    """A PBX of a process without a link of its own: each command goes to the PBX's
    active telephony process and this waits for its outcome."""

    def __init__(self, redis: Redis, *, pbx: str, wait_s: float) -> None:
        self._redis = redis
        self._pbx = pbx
        self._stream = COMMANDS_STREAM.format(pbx=pbx)
        self._wait_s = wait_s
        self._cancel = redis.register_script(_CANCEL)

    @property
    def up(self) -> bool:
        return True  # whether an active process takes the command is known by sending it

    async def originate(self, request: OriginateRequest) -> None:
        await self._command("originate", dataclasses.asdict(request))

    async def redirect(self, call_id: str, extension: str) -> None:
        await self._command("redirect", {"call_id": call_id, "extension": extension})

    async def hangup(self, call_id: str) -> None:
        await self._command("hangup", {"call_id": call_id})

    async def _command(self, kind: str, args: dict[str, Any]) -> None:
        command_id = uuid.uuid4().hex
        state, reply = STATE_KEY.format(id=command_id), REPLY_KEY.format(id=command_id)
        entry = {"id": command_id, "pbx": self._pbx, "kind": kind, "args": args}
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(state, "waiting", px=int(self._wait_s * 1000))
                pipe.xadd(self._stream, {"e": json.dumps(entry)}, maxlen=10_000)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise PbxError("pbx_unavailable", f"Redis unreachable: {exc}") from exc
        try:
            answer = await self._reply(reply)
            if answer is None:
                if await self._cancel(keys=[state]):
                    raise PbxError(
                        "pbx_unavailable",
                        f"no telephony service of PBX {self._pbx!r} took the command"
                        f" within {self._wait_s:g} s",
                    )
                # Taken just now: the PBX is answering.
                answer = await self._reply(reply)
        except (RedisError, OSError) as exc:
            raise PbxError(NO_REPLY, f"Redis lost while waiting: {exc}") from exc
        if answer is None:
            raise PbxError(
                NO_REPLY,
                "the telephony service took the command and stopped before answering:"
                " the call may have been placed",
            )
        outcome = json.loads(answer)
        if not outcome["ok"]:
            raise PbxError(outcome["reason"], outcome["message"])

    async def _reply(self, key: str) -> bytes | None:
        """The reply, within the wait; None without one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while (left := deadline - loop.time()) > 0:
            # Short blocks: a read longer than the client's socket timeout (5 s) fails.
            answer: Any = await self._redis.blpop([key], timeout=min(max(left, 0.01), 1.0))
            if answer is not None:
                return bytes(answer[1])
        return None


def pbx_serving(extension: str, default: str, by_prefix: dict[str, str]) -> str:
    """The name of the PBX `extension` is on: the longest listed prefix's, else `default`."""
    prefix = max((p for p in by_prefix if extension.startswith(p)), key=len, default=None)
    return default if prefix is None else by_prefix[prefix]


async def start_remote_pbx(services: Services) -> Callable[[], Awaitable[None]]:
    """In a process without a PBX link: with Redis, commands go to the active process of
    the PBX they name (any name a call carries, not only those configured here)."""
    redis, settings = services.redis, services.settings
    if redis is not None:
        pbxes: dict[str, RemotePbx] = {}

        def named(name: str) -> RemotePbx:
            pbx = pbxes.get(name)
            if pbx is None:
                pbx = pbxes[name] = RemotePbx(redis, pbx=name, wait_s=settings.pbx_command_wait_s)
            return pbx

        services.links.pbx_named = named

    async def stop() -> None:
        services.links.pbx_named = None

    return stop


async def _run(pbx: Pbx, kind: str, args: dict[str, Any]) -> None:
    if kind == "originate":
        await pbx.originate(OriginateRequest(**args))
    elif kind == "redirect":
        await pbx.redirect(args["call_id"], args["extension"])
    elif kind == "hangup":
        await pbx.hangup(args["call_id"])
    else:
        raise PbxError("unknown_command", f"no PBX command {kind!r}")


async def start_pbx_commands(services: Services) -> Callable[[], Awaitable[None]]:
    """Beside the PBX link, in its active process: runs the API workers' commands for
    this PBX (CALLCARD_PBX_NAME)."""
    redis = services.redis
    if redis is None:
        raise RuntimeError("PBX commands from API workers travel through CALLCARD_REDIS_URL")
    take = redis.register_script(_TAKE)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    taken_ms = int(services.settings.pbx_command_wait_s * 2000)  # a reply waits this long
    counted = services.metrics.telephony.commands
    # One at a time: a hangup is not overtaken by the originate before it.
    stream = RedisStream(
        redis,
        COMMANDS_STREAM.format(pbx=services.settings.pbx_name),
        group=GROUP,
        consumer=CONSUMER,
        key=lambda _: "",
        concurrency=1,
    )

    async def link_up(state: str) -> None:
        """Until the PBX link takes commands (a takeover's AMI login), at most as long as
        the command waits: one found expired is not run anyway."""
        left_ms = await redis.pttl(state)
        deadline = loop.time() + max(left_ms, 0) / 1000
        while not (services.links.pbx and services.links.pbx.up) and not stop.is_set():
            if loop.time() >= deadline:
                return
            await asyncio.sleep(0.05)

    async def handle(run: list[dict[str, Any]], *, again: bool) -> None:
        for entry in run:
            command_id, kind = str(entry["id"]), str(entry["kind"])
            state = STATE_KEY.format(id=command_id)
            await link_up(state)
            if not await take(keys=[state], args=[taken_ms]):
                log.warning("PBX command %s (%s): expired or cancelled, not run", command_id, kind)
                counted.labels(kind, "not_run").inc()
                continue
            outcome: dict[str, Any] = {"ok": True}
            pbx = services.links.pbx
            try:
                if pbx is None:
                    raise PbxError("pbx_unavailable", "no PBX is connected")
                await _run(pbx, kind, entry["args"])
            except PbxError as exc:
                outcome = {"ok": False, "reason": exc.reason, "message": str(exc)}
            except (TypeError, KeyError, ValueError) as exc:  # a malformed command
                outcome = {"ok": False, "reason": "invalid_command", "message": str(exc)}
            log.info("PBX command %s (%s): %s", command_id, kind, outcome)
            counted.labels(kind, "ok" if outcome["ok"] else "refused").inc()
            reply = REPLY_KEY.format(id=command_id)
            async with redis.pipeline(transaction=True) as pipe:
                pipe.rpush(reply, json.dumps(outcome))
                pipe.expire(reply, REPLY_TTL_S)
                await pipe.execute()

    task = asyncio.create_task(consume_supervised(stream, handle, stop))

    async def stopping() -> None:
        stop.set()
        await task

    return stopping
