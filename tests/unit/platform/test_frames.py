import json

from pydantic import TypeAdapter

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
