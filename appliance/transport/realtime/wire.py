"""Socket.IO wire encoding tuned for this server (docs/benchmarks.md, "Chat throughput").

- `FastJSON`: orjson for the packets' JSON, with the standard library as the fallback for what
  orjson refuses (integers beyond 64 bits, for instance), so behaviour never changes.
- `TextPacket`: our events never carry binary attachments, so outgoing packets skip
  python-socketio's walk of every payload looking for bytes; a received packet that does not
  decode, or does not have the shape the handlers rely on, raises `frames.BadFrame`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from socketio.packet import Packet

from appliance.transport.realtime.frames import DECODE_ERRORS, BadFrame, check_decoded


class FastJSON:
    """The `json` module interface python-socketio and python-engineio call."""

    JSONDecodeError = json.JSONDecodeError

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:
            return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text, **kwargs)


class TextPacket(Packet):  # type: ignore[misc]
    uses_binary_events = False

    def decode(self, encoded_packet: str | bytes) -> int:
        try:
            attachments = super().decode(encoded_packet)
        except DECODE_ERRORS:
            raise BadFrame("not a Socket.IO packet") from None
        check_decoded(self)
        return int(attachments or 0)
