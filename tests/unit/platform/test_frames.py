import json

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
