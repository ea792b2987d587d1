"""The hub hands a live frame to exactly the sockets `Connection.wants` it for (the rule
the replay uses too), found through its indexes rather than by asking every socket."""

from __future__ import annotations

import itertools

from crm_api.platform.realtime.bus import InProcessBus
from crm_api.platform.realtime.frames import Audience, Frame
from crm_api.platform.realtime.hub import Connection, Hub

USERS = (1, 2, 3)
ROLES = ("manager", "supervisor")
CARDS = (10, 11)


def audiences() -> list[Audience]:
    users = [frozenset(), frozenset({1}), frozenset({2, 3})]
    roles = [frozenset(), frozenset({"supervisor"}), frozenset(ROLES)]
    cards = [None, 10, 11]
    return [
        Audience(user_ids=u, roles=r, client_id=c)
        for u, r, c in itertools.product(users, roles, cards)
    ]


def received(conn: Connection) -> list[Frame]:
    frames = []
    while not conn.queue.empty():
        frame = conn.queue.get_nowait()
        assert frame is not None
        frames.append(frame)
    return frames


def deliver_each(hub: Hub, conns: list[Connection]) -> None:
    for audience in audiences():
        frame = Frame(type="client.updated", data={}, audience=audience)
        hub._deliver(frame)
        for conn in conns:
            got = received(conn)
            assert got == ([frame] if conn.wants(frame) else []), (conn, audience)


def test_each_frame_reaches_the_sockets_it_is_meant_for_once() -> None:
    hub = Hub(InProcessBus())
    conns = [Connection(user_id=u, role=r) for u, r in itertools.product(USERS, ROLES)]
    for conn in conns:
        hub.register(conn)
    hub.watch(conns[0], 10)
    hub.watch(conns[3], 10)
    hub.watch(conns[3], 11)
    deliver_each(hub, conns)

    # A new role, a card no longer watched, a socket gone: the indexes follow.
    hub.change_role(conns[1], "manager")
    hub.unwatch(conns[3], 10)
    hub.unregister(conns[0])
    deliver_each(hub, conns[1:])
    assert received(conns[0]) == []
    assert conns[1].role == "manager" and conns[3].watching == {11}
