"""1:1 calls: the server's call state machine and the signaling relay.

A call rings every socket of the callee; the socket that accepts is bound to the call, as is the
caller's socket. Offers, answers and ICE candidates travel only between those two sockets, whatever
a client writes in `to`. Call state lives behind `CallStore` (in this process first; a shared store
can serve several workers). Every call is logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from appliance.config import CallsConfig
from appliance.errors import AppError, ErrorCode
from appliance.observability.metrics import Metrics
from appliance.services.clock import Clock
from appliance.services.notifier import Notifier
from appliance.services.presence import PresenceService
from appliance.storage.calls import CallRecord, CallRepository
from appliance.storage.users import UserRepository

log = logging.getLogger(__name__)

CALL_INCOMING = "call:incoming"
CALL_ACCEPTED = "call:accepted"
CALL_REJECTED = "call:rejected"
CALL_END = "call:end"
CALL_RECONNECTING = "call:reconnecting"
CALL_RESUMED = "call:resumed"


class CallState(StrEnum):
    RINGING = "ringing"
    ACTIVE = "active"


class EndReason(StrEnum):
    HANGUP = "hangup"
    CANCELLED = "cancelled"
    DECLINED = "declined"
    BUSY = "busy"
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    UNAVAILABLE = "unavailable"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    SERVER_RESTART = "server_restart"


#: How a call that ends while still ringing counts in `appliance_call_setups_total`.
RINGING_ENDS = {
    EndReason.DECLINED: "rejected",
    EndReason.TIMEOUT: "missed",
    EndReason.CANCELLED: "cancelled",
    EndReason.UNAVAILABLE: "unavailable",
}


class Signal(StrEnum):
    OFFER = "webrtc:offer"
    ANSWER = "webrtc:answer"
    ICE_CANDIDATE = "webrtc:ice-candidate"


@dataclass(slots=True)
class Call:
    id: str
    caller_id: int
    caller_name: str
    callee_id: int
    callee_name: str
    audio: bool
    video: bool
    started_at: float
    caller_sid: str | None
    callee_sid: str | None = None
    state: CallState = CallState.RINGING
    ring_timer: asyncio.Task[None] | None = None
    grace: dict[int, asyncio.Task[None]] = field(default_factory=dict)

    def has(self, user_id: int) -> bool:
        return user_id in (self.caller_id, self.callee_id)

    def sid_of(self, user_id: int) -> str | None:
        return self.caller_sid if user_id == self.caller_id else self.callee_sid

    def bind(self, user_id: int, sid: str | None) -> None:
        if user_id == self.caller_id:
            self.caller_sid = sid
        else:
            self.callee_sid = sid

    def peer_of(self, user_id: int) -> int:
        return self.callee_id if user_id == self.caller_id else self.caller_id

    def name_of(self, user_id: int) -> str:
        return self.caller_name if user_id == self.caller_id else self.callee_name

    @property
    def media(self) -> dict[str, bool]:
        return {"audio": self.audio, "video": self.video}


class CallListener(Protocol):
    """Told when a call ends or a participant's bound socket goes (recording stops then)."""

    async def call_ended(self, call: Call) -> None: ...
    async def participant_left(self, call: Call, user_id: int) -> None: ...


class CallStore(Protocol):
    async def get(self, call_id: str) -> Call | None: ...
    async def of_user(self, user_id: int) -> Call | None: ...
    async def add(self, call: Call) -> None: ...
    async def remove(self, call: Call) -> None: ...
    async def all(self) -> list[Call]: ...


class MemoryCallStore:
    def __init__(self) -> None:
        self._calls: dict[str, Call] = {}
        self._by_user: dict[int, str] = {}

    async def get(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    async def of_user(self, user_id: int) -> Call | None:
        call_id = self._by_user.get(user_id)
        return self._calls.get(call_id) if call_id else None

    async def add(self, call: Call) -> None:
        self._calls[call.id] = call
        self._by_user[call.caller_id] = call.id
        self._by_user[call.callee_id] = call.id

    async def remove(self, call: Call) -> None:
        self._calls.pop(call.id, None)
        for user_id in (call.caller_id, call.callee_id):
            if self._by_user.get(user_id) == call.id:
                del self._by_user[user_id]

    async def all(self) -> list[Call]:
        return list(self._calls.values())


def history_entry(record: CallRecord, user_id: int) -> dict[str, Any]:
    outgoing = record.caller_id == user_id
    return {
        "id": record.id,
        "direction": "outgoing" if outgoing else "incoming",
        "peer": {
            "user_id": record.callee_id if outgoing else record.caller_id,
            "username": record.callee_name if outgoing else record.caller_name,
        },
        "media": {"audio": record.audio, "video": record.video},
        "started_at": record.started_at,
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "end_reason": record.end_reason,
    }


class CallService:
    def __init__(
        self,
        config: CallsConfig,
        store: CallStore,
        log_repo: CallRepository,
        users: UserRepository,
        presence: PresenceService,
        notifier: Notifier,
        clock: Clock,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._log = log_repo
        self._metrics = metrics
        self._users = users
        self._presence = presence
        self._notifier = notifier
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[CallListener] = []

    def _setup_outcome(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.call_setup(outcome)

    def add_listener(self, listener: CallListener) -> None:
        self._listeners.append(listener)

    async def _tell(self, call: Call, left: int | None = None) -> None:
        for listener in self._listeners:
            try:
                if left is None:
                    await listener.call_ended(call)
                else:
                    await listener.participant_left(call, left)
            except Exception:  # a listener's bug must not break the call flow
                log.exception("call listener failed")

    async def start(self) -> None:
        await self._log.close_unfinished(EndReason.SERVER_RESTART, self._clock())

    async def stop(self) -> None:
        for call in await self._store.all():
            await self._finish(call, EndReason.SERVER_RESTART, notify=False)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- looking calls up -------------------------------------------------------------------

    async def _participant_call(self, user_id: int, call_id: str) -> Call:
        call = await self._store.get(call_id)
        if call is None or not call.has(user_id):
            raise AppError(ErrorCode.NOT_FOUND, "no such call")
        return call

    async def current(self, user_id: int) -> Call | None:
        return await self._store.of_user(user_id)

    async def get(self, call_id: str) -> Call | None:
        return await self._store.get(call_id)

    async def counts(self) -> dict[str, int]:
        """Calls in progress by state: for /metrics, at scrape time."""
        found = {state.value: 0 for state in CallState}
        for call in await self._store.all():
            found[call.state.value] += 1
        return found

    # -- the state machine ------------------------------------------------------------------

    async def start_call(
        self, user_id: int, username: str, sid: str, callee_id: int, audio: bool, video: bool
    ) -> str:
        if callee_id == user_id:
            raise AppError(ErrorCode.INVALID_REQUEST, "you cannot call yourself")
        if not (audio or video):
            raise AppError(ErrorCode.INVALID_REQUEST, "a call needs audio, video or both")
        if await self._store.of_user(user_id) is not None:
            raise AppError(ErrorCode.CONFLICT, "you are already in a call")
        callee = await self._users.by_id(callee_id)
        if callee is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such user")
        if await self._presence.socket_count(callee_id) == 0:
            self._setup_outcome("unavailable")
            raise AppError(ErrorCode.UNAVAILABLE, f"{callee.username} is not online")
        now = self._clock()
        call = Call(
            id=secrets.token_urlsafe(12),
            caller_id=user_id,
            caller_name=username,
            callee_id=callee_id,
            callee_name=callee.username,
            audio=audio,
            video=video,
            started_at=now,
            caller_sid=sid,
        )
        await self._log.started(call.id, user_id, callee_id, audio, video, now)
        if await self._store.of_user(callee_id) is not None:
            await self._log.ended(call.id, EndReason.BUSY, now)
            self._setup_outcome("busy")
            # After the ack that carries the call id has gone out.
            self._spawn(
                self._later(
                    self._notifier.to_socket(
                        sid, CALL_REJECTED, {"call_id": call.id, "reason": EndReason.BUSY.value}
                    )
                )
            )
            return call.id
        await self._store.add(call)
        call.ring_timer = self._spawn(self._ring_timeout(call))
        await self._notifier.to_user(
            callee_id,
            CALL_INCOMING,
            {
                "call_id": call.id,
                "caller": {"user_id": user_id, "username": username},
                "media": call.media,
            },
        )
        return call.id

    @staticmethod
    async def _later(notification: Coroutine[Any, Any, None]) -> None:
        await asyncio.sleep(0)
        await notification

    async def _ring_timeout(self, call: Call) -> None:
        await asyncio.sleep(self._config.ring_timeout)
        call.ring_timer = None  # this task is finishing: nothing to cancel
        if call.state is CallState.RINGING:
            await self._finish(call, EndReason.TIMEOUT)

    async def accept(self, user_id: int, sid: str, call_id: str) -> Call:
        call = await self._participant_call(user_id, call_id)
        if user_id != call.callee_id:
            raise AppError(ErrorCode.FORBIDDEN, "only the callee can accept")
        if call.state is not CallState.RINGING:
            raise AppError(ErrorCode.CONFLICT, "the call was already answered")
        call.state = CallState.ACTIVE
        call.callee_sid = sid
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        await self._log.answered(call.id, self._clock())
        self._setup_outcome("answered")
        if call.caller_sid is not None:
            await self._notifier.to_socket(call.caller_sid, CALL_ACCEPTED, {"call_id": call.id})
        await self._notifier.to_user(
            user_id,
            CALL_END,
            {"call_id": call.id, "reason": EndReason.ANSWERED_ELSEWHERE.value},
            except_sid=sid,
        )
        return call

    async def reject(self, user_id: int, sid: str, call_id: str) -> None:
        call = await self._participant_call(user_id, call_id)
        if user_id != call.callee_id:
            raise AppError(ErrorCode.FORBIDDEN, "only the callee can reject")
        if call.state is not CallState.RINGING:
            raise AppError(ErrorCode.CONFLICT, "the call was already answered")
        await self._finish(call, EndReason.DECLINED, rejected_by=sid)

    async def hang_up(self, user_id: int, sid: str, call_id: str) -> None:
        call = await self._participant_call(user_id, call_id)
        if call.state is CallState.RINGING and user_id == call.callee_id:
            await self._finish(call, EndReason.DECLINED, rejected_by=sid)
        elif call.state is CallState.RINGING:
            await self._finish(call, EndReason.CANCELLED, ended_by=user_id)
        else:
            await self._finish(call, EndReason.HANGUP, ended_by=user_id)

    async def _finish(
        self,
        call: Call,
        reason: EndReason,
        *,
        ended_by: int | None = None,
        rejected_by: str | None = None,
        notify: bool = True,
    ) -> None:
        """End a call once: stop its timers, log it, tell whoever should hear."""
        if await self._store.get(call.id) is not call:
            return
        await self._store.remove(call)
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        for task in call.grace.values():
            if task is not asyncio.current_task():
                task.cancel()
        await self._log.ended(call.id, reason, self._clock())
        if call.state is CallState.RINGING:
            self._setup_outcome(RINGING_ENDS.get(reason, "failed"))
        await self._tell(call)
        if not notify:
            return
        payload = {"call_id": call.id, "reason": reason.value}
        if reason is EndReason.DECLINED and call.state is CallState.RINGING:
            if call.caller_sid is not None:
                await self._notifier.to_socket(call.caller_sid, CALL_REJECTED, payload)
            await self._notifier.to_user(call.callee_id, CALL_END, payload, except_sid=rejected_by)
            return
        for user_id in (call.caller_id, call.callee_id):
            if user_id == ended_by:
                continue
            if call.state is CallState.RINGING and user_id == call.callee_id:
                await self._notifier.to_user(user_id, CALL_END, payload)  # stop every ringer
                continue
            sid = call.sid_of(user_id)
            if sid is not None:
                await self._notifier.to_socket(sid, CALL_END, payload)

    # -- signaling relay --------------------------------------------------------------------

    async def relay(
        self, user_id: int, sid: str, signal: Signal, call_id: str | None, body: dict[str, Any]
    ) -> None:
        call = await self._store.of_user(user_id)
        if (
            call is None
            or call.state is not CallState.ACTIVE
            or call.sid_of(user_id) != sid
            or (call_id is not None and call_id != call.id)
        ):
            raise AppError(ErrorCode.FORBIDDEN, "this socket is not in that active call")
        peer_sid = call.sid_of(call.peer_of(user_id))
        if peer_sid is None:
            raise AppError(ErrorCode.UNAVAILABLE, "the other side is reconnecting; retry")
        await self._notifier.to_socket(
            peer_sid, signal.value, {"call_id": call.id, "from": user_id, **body}
        )

    # -- disconnects and resuming ------------------------------------------------------------

    async def socket_gone(self, user_id: int, sid: str, sockets_left: int) -> None:
        call = await self._store.of_user(user_id)
        if call is None:
            return
        if call.state is CallState.RINGING:
            if user_id == call.caller_id and call.caller_sid == sid:
                await self._finish(call, EndReason.CANCELLED)
            elif user_id == call.callee_id and sockets_left == 0:
                await self._finish(call, EndReason.UNAVAILABLE)
            return
        if call.sid_of(user_id) != sid:
            return  # another tab of a participant; the call is not on it
        call.bind(user_id, None)
        await self._tell(call, left=user_id)
        if self._config.reconnect_grace <= 0:
            await self._finish(call, EndReason.DISCONNECTED)
            return
        peer_sid = call.sid_of(call.peer_of(user_id))
        if peer_sid is not None:
            await self._notifier.to_socket(
                peer_sid, CALL_RECONNECTING, {"call_id": call.id, "user_id": user_id}
            )
        call.grace[user_id] = self._spawn(self._grace_expired(call, user_id))

    async def _grace_expired(self, call: Call, user_id: int) -> None:
        await asyncio.sleep(self._config.reconnect_grace)
        if call.sid_of(user_id) is None:
            await self._finish(call, EndReason.DISCONNECTED)

    async def resume(self, user_id: int, sid: str, call_id: str) -> dict[str, Any]:
        """A participant's new socket takes over their side of an active call."""
        call = await self._participant_call(user_id, call_id)
        if call.state is not CallState.ACTIVE:
            raise AppError(ErrorCode.CONFLICT, "only an answered call can be resumed")
        current = call.sid_of(user_id)
        if current is not None and current != sid:
            raise AppError(ErrorCode.CONFLICT, "the call is active on another socket")
        call.bind(user_id, sid)
        grace = call.grace.pop(user_id, None)
        if grace is not None:
            grace.cancel()
        peer = call.peer_of(user_id)
        peer_sid = call.sid_of(peer)
        if peer_sid is not None:
            await self._notifier.to_socket(
                peer_sid, CALL_RESUMED, {"call_id": call.id, "user_id": user_id}
            )
        return {
            "call_id": call.id,
            "role": "caller" if user_id == call.caller_id else "callee",
            "peer": {"user_id": peer, "username": call.name_of(peer)},
            "media": call.media,
        }

    async def history(self, user_id: int, limit: int = 50) -> list[dict[str, Any]]:
        return [history_entry(r, user_id) for r in await self._log.of_user(user_id, limit)]
