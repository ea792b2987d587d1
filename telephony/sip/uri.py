"""The parties of a SIP call from its From/To header values, and the URIs the bridge dials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_NAME_ADDR = re.compile(
    r'^\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^<"]*?))\s*<(?P<uri>[^>]*)>'
)
_URI_USER = re.compile(r"^(?:sips?|tel):(?P<user>[^@;?>]*)(?:@|$|;)", re.IGNORECASE)
_WITHHELD = {"", "anonymous", "unknown", "restricted", "unavailable"}
_DIALLABLE = re.compile(r"^[A-Za-z0-9_+.*#-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Party:
    user: str | None  # None when withheld
    name: str | None


def parse_party(value: str) -> Party:
    """`"Ivan" <sip:+7916...@host>;tag=x`, `<sip:101@host>` or a bare `sip:101@host`."""
    match = _NAME_ADDR.match(value)
    if match is not None:
        quoted = match.group("quoted")
        name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group("token")
        uri = match.group("uri")
    else:
        name, uri = None, value.strip().split(";", 1)[0]
    found = _URI_USER.match(uri.strip())
    user = unquote(found.group("user")) if found else None
    if user is not None and user.lower() in _WITHHELD:
        user = None
    name = (name or "").strip() or None
    if name is not None and name.lower() in _WITHHELD:
        name = None
    return Party(user=user, name=name)


def agent_of(target: str) -> str:
    """The extension a routing target names: `101`, or the user of `sip:101@pbx`."""
    if ":" in target:
        user = parse_party(target).user
        if user:
            return user
    return target


def dial_uri(target: str, template: str) -> str:
    """A SIP URI as is; an extension or number through `template` (`sip:{user}@host`)."""
    if target.lower().startswith(("sip:", "sips:")):
        return target
    if not _DIALLABLE.match(target):
        raise ValueError(f"not an extension, number or SIP URI: {target!r}")
    return template.format(user=target)
