"""Property test: any payload on any client event gets a typed ack, and the socket survives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.errors import ErrorCode
from tests.support import BackgroundServer

KNOWN_CODES = {code.value for code in ErrorCode}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=64),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
ids = st.integers(min_value=-5, max_value=5) | st.integers() | json_values
field_values = {
    "token": json_values,
    "room_id": ids,
    "message_id": ids,
    "last_id": ids,
    "text": st.text(max_size=200) | json_values,
    "client_msg_id": st.text(max_size=80) | json_values,
    "typing": st.booleans() | json_values,
    "callee_id": ids,
    "call_id": st.text(max_size=80) | json_values,
    "media": st.fixed_dictionaries({"audio": json_values, "video": json_values}) | json_values,
    "to": json_values,
    "action": st.sampled_from(["start", "stop"]) | json_values,
    "recording_id": st.text(max_size=80) | json_values,
    "reason": st.text(max_size=50) | json_values,
    "offer": st.fixed_dictionaries({"type": st.text(max_size=8), "sdp": st.text()}) | json_values,
    "answer": st.fixed_dictionaries({"type": json_values, "sdp": json_values}) | json_values,
    "candidate": st.fixed_dictionaries(
        {"candidate": st.text(max_size=40), "sdpMid": json_values, "sdpMLineIndex": json_values}
    )
    | json_values,
}
shaped = st.dictionaries(st.sampled_from(sorted(field_values)), json_values, max_size=4).flatmap(
    lambda d: st.fixed_dictionaries({k: field_values[k] for k in d})
)
sync_payloads = st.fixed_dictionaries(
    {"rooms": st.lists(st.fixed_dictionaries({"room_id": ids, "last_id": ids}), max_size=3)}
)
payloads = json_values | shaped | sync_payloads
events = st.sampled_from(
    [
        "auth:refresh",
        "presence:list",
        "chat:message",
        "chat:edit",
        "chat:delete",
        "chat:read",
        "chat:typing",
        "chat:sync",
        "call:start",
        "call:accepted",
        "call:rejected",
        "call:end",
        "call:resume",
        "webrtc:offer",
        "webrtc:answer",
        "webrtc:ice-candidate",
        "call:record",
        "recorder:offer",
        "recorder:ice-candidate",
        "recorder:answer",
        "recorder:state",
        "recorder:failed",
        "recorder:done",
        "no:such",
        "x" * 300,
    ]
)


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    limits = {
        f"{c}_{k}": 100_000 for c in ("chat", "typing", "signaling") for k in ("rate", "burst")
    }
    server = BackgroundServer(data_dir, {"web": {"presence_grace": 0}, "rate_limits": limits})
    # A room the fuzzing user belongs to, with a message, so valid ids exist too (room 1, msg 1).
    chat = server.server.app.container.chat
    peer = server.run(server.server.add_user("peer"))
    room = server.run(chat.open_direct(1, peer))
    server.run(chat.send(1, room.room.id, "hello", "seed", sid=None))
    yield server
    server.close()


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, payload=payloads)
def test_any_payload_gets_typed_ack(background: BackgroundServer, event: str, payload: Any) -> None:
    ack = background.run(background.client.call(event, payload))
    assert isinstance(ack, dict)
    if ack["ok"] is False:
        assert ack["error"]["code"] in KNOWN_CODES
        assert ack["error"]["code"] != "internal_error"
        assert isinstance(ack["error"]["message"], str)
    assert background.client.sio.connected
