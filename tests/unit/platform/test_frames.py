import json

import pytest
from pydantic import TypeAdapter

from crm_api.platform.realtime import frames
from crm_api.platform.realtime.frames import Audience, Frame


def test_a_frame_is_encoded_for_browsers_once_and_carries_the_id_the_backlog_gave_it() -> None:
    frame = Frame(type="call.ringing", data={"caller": "Иван"}, audience=Audience())
    first = frame.wire()
    assert frame.wire() is first  # every socket of the audience sends the same text
    published = frame.with_id("1700000000000-3")
    wire = json.loads(published.wire())
    assert wire["id"] == "1700000000000-3" and wire["data"] == {"caller": "Иван"}
    assert "Иван" in published.wire()  # readable, not \u-escaped
    assert published == Frame.decode(published.encode())  # the cache is no part of a frame


def test_a_frame_from_the_bus_goes_to_sockets_as_its_publisher_made_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The receiving worker reads the head (the audience) and sends the body on as it came:
    the data is parsed only when something asks for it."""
    sent = Frame(
        type="call.ringing",
        data={"caller": "Иван", "talk_s": 1.5, "note": "строка 1\nстрока 2"},
        audience=Audience(user_ids=frozenset({3}), roles=frozenset({"supervisor"})),
    )
    raw = sent.encode()
    parsed: list[str] = []
    loads = json.loads
    monkeypatch.setattr(frames.json, "loads", lambda text: parsed.append(text) or loads(text))
    received = Frame.decode(raw).with_id("1700000000000-4")
    wire = received.wire()
    assert len(parsed) == 1 and "Иван" not in parsed[0]  # the head alone
    assert received.audience == sent.audience and received.ts == sent.ts
    assert wire == sent.with_id("1700000000000-4").wire()
    assert received.data == sent.data and len(parsed) == 2
    assert loads(wire)["data"]["note"] == "строка 1\nстрока 2"


def test_a_frame_in_the_one_line_form_of_earlier_workers_is_read() -> None:
    old = {"id": "", "type": "task.due", "data": {"n": 1}, "ts": "2026-12-04T10:00:00+00:00"}
    raw = json.dumps({**old, "users": [1], "roles": [], "client": 7}).encode()
    frame = Frame.decode(raw).with_id("1700000000000-5")
    assert frame.data == {"n": 1} and frame.audience.client_id == 7
    assert json.loads(frame.wire()) == {**old, "id": "1700000000000-5"}


def test_every_frame_model_is_in_the_documented_union() -> None:
    import crm_api.app  # noqa: F401  (every feature, so every frame model, is imported)
    from crm_api.frames import Frame
    from crm_api.platform.realtime.frames import FrameModel

    union = TypeAdapter(Frame).json_schema(ref_template="{model}")
    listed = set(union["discriminator"]["mapping"])
    defined = {model.name() for model in FrameModel.__subclasses__()}
    assert defined == listed and len(listed) > 20


def test_the_openapi_document_carries_the_frames() -> None:
    from crm_api.app import create_app
    from crm_api.platform.settings import Settings

    doc = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    schemas = doc["components"]["schemas"]
    mapping = schemas["Frame"]["discriminator"]["mapping"]
    assert mapping["link.status"] == "#/components/schemas/LinkStatusFrame"
    ringing = schemas["CallRingingFrame"]["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
    assert {"client", "agent", "caller"} <= set(schemas[ringing]["properties"])
