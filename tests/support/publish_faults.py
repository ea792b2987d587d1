"""A hub whose publish fails once, for the frame of one type: what a worker that dies (or
loses the bus) between its commit and its frames leaves to the retry."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from crm_api.platform.realtime.frames import Frame
from crm_api.platform.realtime.hub import Hub


class FailOnce:
    """Installed on `hub`: the first publish of a `frame_type` frame raises `error` (every
    one of them, `always`: a worker about to die)."""

    def __init__(self, hub: Hub, frame_type: str, error: Exception, *, always: bool = False):
        self.failed: list[Frame] = []
        self._publish, self._publish_now = hub.publish, hub.publish_now
        self._type = frame_type
        self._error = error
        self._always = always
        hub.publish = self.publish  # type: ignore[method-assign]
        hub.publish_now = self.publish_now  # type: ignore[method-assign]

    async def publish(self, frame: Frame) -> Frame:
        if self._fails(frame):
            raise self._error
        return await self._publish(frame)

    def publish_now(self, frame: Frame) -> Coroutine[Any, Any, Frame]:
        return self._raise() if self._fails(frame) else self._publish_now(frame)

    def _fails(self, frame: Frame) -> bool:
        if frame.type == self._type and (self._always or not self.failed):
            self.failed.append(frame)
            return True
        return False

    async def _raise(self) -> Frame:
        raise self._error
