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
payloads = json_values | st.fixed_dictionaries({"token": json_values})
events = st.sampled_from(["auth:refresh", "presence:list", "no:such", "chat:message", "x" * 300])


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    server = BackgroundServer(data_dir, {"web": {"presence_grace": 0}})
    yield server
    server.close()


@pytest.mark.timeout(120)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, payload=payloads)
def test_any_payload_gets_typed_ack(background: BackgroundServer, event: str, payload: Any) -> None:
    ack = background.run(background.client.call(event, payload))
    assert isinstance(ack, dict)
    if ack["ok"] is False:
        assert ack["error"]["code"] in KNOWN_CODES
        assert ack["error"]["code"] != "internal_error"
        assert isinstance(ack["error"]["message"], str)
    assert background.client.sio.connected
