"""The one module that reaches into aiortc's and aioice's internals.

aiortc's `RTCRtpReceiver` re-assembles complete encoded frames in its jitter buffer and hands each
one to a decoder running in the receiver's own thread (`rtcrtpreceiver.decoder_worker`, which asks
`rtcrtpreceiver.get_decoder(codec)` for the decoder). For a track marked here with `enable(track)`
the decoder is swapped for a pass-through one: the track's `recv()` then returns `EncodedFrame`s
(the encoded bytes, the unwrapped RTP timestamp, the keyframe flag) instead of decoded pictures
and samples, so recording costs no decoding at all. Tracks that are not marked (aiortc's stock
`MediaRecorder` in the same process, a benchmark's reference) keep aiortc's own decoders.

Switch back to the library's own path: `recording.passthrough = false` in the config; then
`install()` is never called and nothing here is patched.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aioice.ice
from aiortc import MediaStreamTrack, RTCRtpReceiver, rtcrtpreceiver

# The two modules patched, untyped on purpose: what is swapped is not their public API.
_receiver_module: Any = rtcrtpreceiver
_ice_module: Any = aioice.ice

log = logging.getLogger(__name__)

VP8_START_CODE = b"\x9d\x01\x2a"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One complete encoded frame as it came off the wire."""

    codec: str  # "vp8" | "opus" (lower-case codec name)
    data: bytes
    timestamp: int  # RTP clock units, unwrapped, 0 at the receiver's first frame
    keyframe: bool
    width: int = 0  # VP8 keyframes carry the picture size; 0 otherwise
    height: int = 0


def vp8_keyframe_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) if `data` is a VP8 keyframe (RFC 6386 section 9.1), else None."""
    if len(data) < 10 or data[0] & 1 or data[3:6] != VP8_START_CODE:
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


class PassthroughDecoder:
    """Stands in for aiortc's decoder: returns the encoded frame, annotated, undecoded."""

    def __init__(self, codec_name: str) -> None:
        self.codec = codec_name.lower()

    def decode(self, encoded_frame: Any) -> list[EncodedFrame]:
        data = bytes(encoded_frame.data)
        if not data:
            return []
        timestamp = int(encoded_frame.timestamp)
        if self.codec == "vp8":
            size = vp8_keyframe_size(data)
            if size is None:
                return [EncodedFrame(self.codec, data, timestamp, keyframe=False)]
            return [EncodedFrame(self.codec, data, timestamp, True, size[0], size[1])]
        return [EncodedFrame(self.codec, data, timestamp, keyframe=True)]


class _Patches:
    """What `install()` replaced, and which track queues want the pass-through."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.stock_get_decoder: Callable[[Any], Any] | None = None
        self.stock_worker: Callable[..., None] | None = None
        self.marked: weakref.WeakSet[asyncio.Queue[Any]] = weakref.WeakSet()
        self.local = threading.local()
        self.stock_host_addresses: Callable[[bool, bool], list[str]] | None = None


_patches = _Patches()


def _worker(
    loop: asyncio.AbstractEventLoop, input_q: Any, output_q: asyncio.Queue[Any], *args: Any
) -> None:
    """aiortc's decoder thread, remembering which track it feeds (for `_get_decoder`)."""
    _patches.local.output_q = output_q
    assert _patches.stock_worker is not None
    _patches.stock_worker(loop, input_q, output_q, *args)


def _get_decoder(codec: Any) -> Any:
    """Called in the decoder thread at the first frame (and on a codec change)."""
    output_q = getattr(_patches.local, "output_q", None)
    if output_q is not None and output_q in _patches.marked:
        return PassthroughDecoder(str(codec.name))
    assert _patches.stock_get_decoder is not None
    return _patches.stock_get_decoder(codec)


def install() -> None:
    """Put the pass-through in aiortc's receive path. Idempotent; tracks not `enable`d are
    decoded as before."""
    with _patches.lock:
        if _patches.installed:
            return
        _patches.stock_get_decoder = _receiver_module.get_decoder
        _patches.stock_worker = _receiver_module.decoder_worker
        _receiver_module.get_decoder = _get_decoder
        _receiver_module.decoder_worker = _worker
        _patches.installed = True


def installed() -> bool:
    return _patches.installed


def enable(track: MediaStreamTrack) -> None:
    """Have this received track deliver `EncodedFrame`s. Call before its first frame arrives
    (in the peer connection's "track" handler)."""
    install()
    queue = getattr(track, "_queue", None)
    if not isinstance(queue, asyncio.Queue):
        raise TypeError("not a track received by an aiortc RTCPeerConnection")
    _patches.marked.add(queue)


def request_keyframe(receiver: RTCRtpReceiver) -> None:
    """Send a PLI (RFC 4585 section 6.3.1) for every stream the receiver gets."""
    send = getattr(receiver, "_send_rtcp_pli", None)
    if send is None:
        return
    for source in receiver.getSynchronizationSources():
        task = asyncio.ensure_future(send(source.source))
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("PLI not sent: %s", task.exception())


def restrict_host_addresses(addrs: list[str]) -> None:
    """Offer only these addresses as ICE host candidates (empty: every address, aioice's own
    choice). Applies to connections created afterwards, in this whole process."""
    parsed = [ipaddress.ip_address(a) for a in addrs]
    with _patches.lock:
        if _patches.stock_host_addresses is None:
            _patches.stock_host_addresses = _ice_module.get_host_addresses
        if not parsed:
            _ice_module.get_host_addresses = _patches.stock_host_addresses
            return
        chosen = [str(a) for a in parsed]

        def only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return [
                a
                for a in chosen
                if (use_ipv4 and ipaddress.ip_address(a).version == 4)
                or (use_ipv6 and ipaddress.ip_address(a).version == 6)
            ]

        _ice_module.get_host_addresses = only
