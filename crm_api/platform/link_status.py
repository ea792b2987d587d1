"""The deployment's links to the outside (PBX, SMSC, SMTP): configured or not, up or down.

The process that holds a link (`callcard telephony`, `callcard sms`, or `callcard run`
holding all) watches it and reports each change: a `link.status` frame to every user, and
with Redis a key with a short lifetime that it keeps renewing, so any API worker can answer
`GET /links` and a holder that died reads as "down"."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from redis.asyncio import Redis

from crm_api.platform import notifier
from crm_api.platform.db.base import utcnow
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import LinkName, LinkPublic, LinksPublic
from crm_api.platform.settings import Settings

KEY = "callcard:link:"
PROBE_S = 0.25  # how soon a change is told
RENEW_S = 2.0  # how often the holder renews its key; three missed renewals read as "down"


class LinkBoard:
    def __init__(self, settings: Settings, hub: Hub, redis: Redis | None) -> None:
        self._configured: dict[LinkName, bool] = {
            "pbx": bool(settings.ami_url or settings.sip_bind),  # Asterisk, or the SIP bridge
            "smsc": bool(settings.smpp_url),
            "email": bool(settings.smtp_host),
        }
        self._hub = hub
        self._redis = redis
        self._local: dict[LinkName, LinkPublic] = {}  # the links this process holds

    def configured(self, name: LinkName) -> bool:
        return self._configured[name]

    async def read(self) -> LinksPublic:
        links = {name: await self._read(name) for name in ("pbx", "smsc", "email")}
        return LinksPublic.model_validate(links)

    async def _read(self, name: LinkName) -> LinkPublic:
        if not self._configured[name]:
            return LinkPublic(configured=False, up=None, since=None)
        if name == "email":
            return LinkPublic(configured=True, up=None, since=None)
        if name in self._local:
            return self._local[name]
        if self._redis is not None:
            raw = await self._redis.get(KEY + name)
            if raw is not None:
                return LinkPublic.model_validate_json(raw)
        return LinkPublic(configured=True, up=False, since=None)  # nobody holds it

    async def report(self, name: LinkName, up: bool) -> bool:
        """The holder's view of its link; a change is told to every user at once."""
        prev = self._local.get(name)
        if prev is not None and prev.up == up:
            return False
        link = LinkPublic(configured=True, up=up, since=utcnow())
        self._local[name] = link
        await self._store(name, link)
        await notifier.link_changed(self._hub, name, link)
        return True

    async def _store(self, name: LinkName, link: LinkPublic) -> None:
        if self._redis is not None:
            await self._redis.set(KEY + name, link.model_dump_json(), px=int(3 * RENEW_S * 1000))

    async def watch(self, name: LinkName, probe: Callable[[], bool]) -> Callable[[], None]:
        """Reports `probe()` now and whenever it changes, renewing the shared key meanwhile;
        returns what stops the watch (the key then lapses: nobody holds the link)."""

        async def loop() -> None:
            renewed = loop_time()
            while True:
                await asyncio.sleep(PROBE_S)
                with contextlib.suppress(Exception):  # a Redis hiccup must not end the watch
                    if await self.report(name, probe()):
                        renewed = loop_time()
                    elif loop_time() - renewed >= RENEW_S:
                        await self._store(name, self._local[name])
                        renewed = loop_time()

        def stop() -> None:
            task.cancel()
            self._local.pop(name, None)

        loop_time = asyncio.get_running_loop().time
        await self.report(name, probe())
        task = asyncio.create_task(loop(), name=f"link-{name}")
        return stop
