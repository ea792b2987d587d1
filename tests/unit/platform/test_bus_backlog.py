from crm_api.platform.realtime.bus import InProcessBus
from crm_api.platform.realtime.frames import Audience, Frame
from crm_api.platform.realtime.hub import Hub


def _frame(n: int) -> Frame:
    return Frame(type="t", data={"n": n}, audience=Audience(user_ids=frozenset({1})))


async def test_since_returns_only_newer_frames_in_order() -> None:
    bus = InProcessBus(backlog=10)
    sent = [await bus.publish(_frame(i)) for i in range(5)]
    after = await bus.since(sent[1].id)
    assert after is not None
    assert [f.data["n"] for f in after] == [2, 3, 4]
    assert await bus.since(sent[-1].id) == []


async def test_since_signals_a_gap_when_the_backlog_no_longer_reaches_back() -> None:
    bus = InProcessBus(backlog=3)
    sent = [await bus.publish(_frame(i)) for i in range(6)]
    assert await bus.since(sent[0].id) is None  # frames 1 and 2 are gone
    kept = await bus.since(sent[2].id)
    assert kept is not None and [f.data["n"] for f in kept] == [3, 4, 5]


async def test_since_refuses_garbage_and_future_ids() -> None:
    bus = InProcessBus(backlog=3)
    await bus.publish(_frame(0))
    assert await bus.since("not-an-id") is None
    assert await bus.since("99999999999999-0") is None
    assert await bus.since("1-0") is None  # from a previous process: cannot be resumed


def test_frame_survives_the_bus_encoding() -> None:
    frame = Frame(
        type="client.updated",
        data={"name": "Иванов"},
        audience=Audience(user_ids=frozenset({1, 2}), roles=frozenset({"supervisor"}), client_id=7),
    ).with_id("5-1")
    back = Frame.decode(frame.encode())
    assert back == frame


async def test_a_copy_the_bus_dropped_is_not_counted_as_published() -> None:
    published: list[Frame] = []
    hub = Hub(InProcessBus(), published=published.append)
    frame = _frame(1)
    first = await hub.publish(frame)
    again = await hub.publish(frame)  # a retry after an error: readers get it once
    assert first.id and not again.id
    await hub.publish_many([frame, _frame(2)])
    assert [f.data["n"] for f in published] == [1, 2]
