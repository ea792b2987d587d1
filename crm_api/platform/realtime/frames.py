"""What travels to browsers: a typed frame and the audience it is meant for, and the
models that document each type of frame (`FrameModel`)."""

from __future__ import annotations

import itertools
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from crm_api.platform.db.base import utcnow

# A frame's tag: this process's random prefix and a counter (unique across workers, and
# without a uuid4's system call per frame); a forked child draws a prefix of its own.
_tag_prefix = uuid.uuid4().hex[:16]
_tags = itertools.count()


def _new_tag_prefix() -> None:
    global _tag_prefix
    _tag_prefix = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_tag_prefix)


def _new_tag() -> str:
    return f"{_tag_prefix}{next(_tags):x}"


class FrameModel(BaseModel):
    """A frame as /ws sends it. One subclass per frame type, beside its publisher (a
    feature's `notifier.py`), sets `type` to a one-value Literal and `data` to its model;
    `crm_api.frames` lists them all, and the OpenAPI document carries the union as `Frame`
    so the web app's frame types are generated."""

    id: str | None = None  # orders frames for `?since=`; None: a control frame of /ws
    ts: datetime | None = None

    @classmethod
    def name(cls) -> str:
        """The frame's `type`."""
        return str(cls.model_fields["type"].default)


@dataclass(frozen=True, slots=True)
class Audience:
    """Who gets a frame: these users, everyone of these roles, the watchers of a card."""

    user_ids: frozenset[int] = field(default_factory=frozenset)
    roles: frozenset[str] = field(default_factory=frozenset)
    client_id: int | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    type: str
    data: dict[str, Any]
    audience: Audience
    ts: datetime = field(default_factory=utcnow)
    id: str = ""  # assigned by the backlog; orders frames for `?since=`
    # Made once per frame: a publish retried after a lost reply (Redis may have run it)
    # carries the same tag, and readers drop the copy.
    tag: str = field(default_factory=_new_tag, compare=False)
    # One frame goes to every socket of its audience (all supervisors, say): encoded once.
    _wire: str | None = field(default=None, init=False, repr=False, compare=False)

    def wire(self) -> str:
        """The JSON a browser receives."""
        if self._wire is None:
            text = json.dumps(
                {"id": self.id, "type": self.type, "data": self.data, "ts": self.ts.isoformat()},
                ensure_ascii=False,
                default=str,
            )
            object.__setattr__(self, "_wire", text)  # a cache, not a change: frozen otherwise
            return text
        return self._wire

    def encode(self) -> bytes:
        """The bus form: the frame and its audience."""
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "data": self.data,
                "ts": self.ts.isoformat(),
                "users": sorted(self.audience.user_ids),
                "roles": sorted(self.audience.roles),
                "client": self.audience.client_id,
            },
            ensure_ascii=False,
            default=str,
        ).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> Frame:
        obj = json.loads(raw)
        return cls(
            id=obj["id"],
            type=obj["type"],
            data=obj["data"],
            ts=datetime.fromisoformat(obj["ts"]),
            audience=Audience(
                user_ids=frozenset(obj["users"]),
                roles=frozenset(obj["roles"]),
                client_id=obj["client"],
            ),
        )

    def with_id(self, frame_id: str) -> Frame:
        return Frame(
            type=self.type,
            data=self.data,
            audience=self.audience,
            ts=self.ts,
            id=frame_id,
            tag=self.tag,
        )


def frame_key(frame_id: str) -> tuple[int, int]:
    """Orders ids of the form `<ms>-<seq>` (Redis stream ids and ours alike)."""
    ms, _, seq = frame_id.partition("-")
    return int(ms), int(seq or 0)
