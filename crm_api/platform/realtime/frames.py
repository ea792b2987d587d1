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


class Frame:
    """A frame and its audience. Its JSON (`body`: type, data and time) is made once, by
    the worker that publishes it, and travels on the bus as it is: every worker hands it
    to its sockets as received, with the id the backlog gave it in front (`wire`), and
    reads its data back only if something asks (`data`)."""

    __slots__ = ("_body", "_data", "_wire", "audience", "id", "tag", "ts", "type")

    def __init__(
        self,
        type: str,
        data: dict[str, Any] | None,
        audience: Audience,
        ts: datetime | None = None,
        id: str = "",
        tag: str | None = None,
        *,
        body: str | None = None,  # its JSON as the bus brought it (then `data` may be None)
    ) -> None:
        assert data is not None or body is not None, "a frame has its data or its body"
        self.type = type
        self._data: dict[str, Any] | None = data
        self.audience = audience
        self.ts = ts or utcnow()
        self.id = id  # assigned by the backlog; orders frames for `?since=`
        # Made once per frame: a publish retried after a lost reply (Redis may have run it)
        # carries the same tag, and readers drop the copy.
        self.tag = tag or _new_tag()
        self._body = body
        # One frame goes to every socket of its audience (all supervisors, say).
        self._wire: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self._body is not None
            self._data = json.loads(self._body)["data"]
        return self._data

    def body(self) -> str:
        """The frame's JSON without its id: what the bus carries to every worker."""
        if self._body is None:
            self._body = json.dumps(
                {"type": self.type, "data": self._data, "ts": self.ts.isoformat()},
                ensure_ascii=False,
                default=str,
            )
        return self._body

    def wire(self) -> str:
        """The JSON a browser receives: the body with the frame's id first."""
        if self._wire is None:
            self._wire = f'{{"id":{json.dumps(self.id)},{self.body()[1:]}'
        return self._wire

    def encode(self) -> bytes:
        """The bus form: a line of what the bus and the sockets' hub read (the id, type,
        time and audience), then the body."""
        head = json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "ts": self.ts.isoformat(),
                "users": sorted(self.audience.user_ids),
                "roles": sorted(self.audience.roles),
                "client": self.audience.client_id,
            },
            ensure_ascii=False,
        )
        return f"{head}\n{self.body()}".encode()

    @classmethod
    def decode(cls, raw: bytes | str, frame_id: str | None = None) -> Frame:
        """`frame_id`: the id the backlog gave it, when the bus brings it apart."""
        text = raw.decode() if isinstance(raw, bytes) else raw
        # JSON escapes the line breaks inside it: the first one ends the head.
        line, _, body = text.partition("\n")
        head = json.loads(line)
        audience = Audience(
            user_ids=frozenset(head["users"]),
            roles=frozenset(head["roles"]),
            client_id=head["client"],
        )
        ts = datetime.fromisoformat(head["ts"])
        # No body: a worker before this form sent the data in the one line.
        frame_id = head["id"] if frame_id is None else frame_id
        return cls(head["type"], head.get("data"), audience, ts, frame_id, body=body or None)

    def with_id(self, frame_id: str) -> Frame:
        return Frame(
            self.type, self._data, self.audience, self.ts, frame_id, self.tag, body=self._body
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        mine = (self.type, self.audience, self.ts, self.id)
        return mine == (other.type, other.audience, other.ts, other.id) and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Frame(type={self.type!r}, id={self.id!r}, audience={self.audience!r})"


def frame_key(frame_id: str) -> tuple[int, int]:
    """Orders ids of the form `<ms>-<seq>` (Redis stream ids and ours alike)."""
    ms, _, seq = frame_id.partition("-")
    return int(ms), int(seq or 0)
