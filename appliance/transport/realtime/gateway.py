"""Socket.IO connection lifecycle: token check on connect, expiry, re-authentication, presence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import socketio
from pydantic import BaseModel, ConfigDict, Field

from appliance.adapters.service_key import key_matches
from appliance.errors import AppError, ErrorCode
from appliance.services.auth import AuthService, Principal
from appliance.services.calls import CallService
from appliance.services.chat import ChatService
from appliance.services.clock import Clock
from appliance.services.presence import PresenceService
from appliance.services.ratelimit import EventClass, RateLimiter
from appliance.transport.realtime.acks import Ack, fail, guarded, ok, parse
from appliance.transport.realtime.engine import EveryoneBatch, send_to_each
from appliance.transport.realtime.heap import HeapTrimmer

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
EventBody = Callable[[str, Principal, M], Awaitable[dict[str, Any]]]
ServiceBody = Callable[[str, M], Awaitable[dict[str, Any]]]
RECORDER = "recorder"


class ServiceSockets(Protocol):
    """Where the gateway reports the recorder service's socket (no user, no presence, no rooms)."""

    async def recorder_connected(self, sid: str) -> None: ...
    async def recorder_gone(self, sid: str) -> None: ...


SESSION_CLOSE = "session:close"
RATE_LIMITED = "rate_limited"
PRESENCE_LIST = "presence:list"
AUTH_REFRESH = "auth:refresh"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def chat_room(room_id: int) -> str:
    return f"room:{room_id}"


def single_payload(args: tuple[Any, ...]) -> Any:
    """Events carry one payload object; none counts as an empty one."""
    if len(args) > 1:
        raise AppError(ErrorCode.INVALID_REQUEST, "send a single payload object")
    return {} if not args or args[0] is None else args[0]


class AnyPayload(BaseModel):
    model_config = ConfigDict(extra="allow")


class TokenPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=4096)


@dataclass(slots=True)
class SocketSession:
    principal: Principal
    expiry: asyncio.TimerHandle | None = None  # a timer, not a task: no coroutine per socket
    closing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class SocketNotifier:
    """The `Notifier` the services use, delivered over Socket.IO rooms.

    With the fast paths on and the in-process manager (one `web` process), a broadcast is
    encoded once and handed to each recipient's engine.io socket (`engine.send_to_each`). With
    them off, or any other manager (a pub/sub one, for several workers), every broadcast goes
    through `emit`, so it reaches the other workers too.
    """

    def __init__(
        self,
        sio: socketio.AsyncServer,
        *,
        fast: bool = True,
        delivered: Callable[[str, int], None] | None = None,
    ) -> None:
        self._sio = sio
        self._direct = fast and type(sio.manager) is socketio.AsyncManager
        #: Told (event, recipient sockets) per targeted send: appliance_events_delivered_total.
        self._delivered = delivered
        #: Sockets of services (the recorder): no user broadcasts reach them.
        self.service_sids: set[str] = set()
        self._everyone = EveryoneBatch(sio, self.service_sids, delivered) if self._direct else None

    def socket_joined(self, sid: str) -> None:
        """A user's socket connected (its presence list is still to be made)."""
        if self._everyone is not None:
            self._everyone.joined(sid)

    def socket_listed(self, sid: str) -> None:
        """A user's socket's presence list is being made."""
        if self._everyone is not None:
            self._everyone.listed(sid)

    def sids_of(self, user_id: int) -> list[str]:
        return [sid for sid, _ in self._sio.manager.get_participants("/", user_room(user_id))]

    async def _send(
        self, event: str, payload: dict[str, Any], room: str | None, skip: list[str] | None = None
    ) -> None:
        """To `room`'s sockets but `skip`; room None: every socket of the namespace."""
        if not self._direct:
            if self._delivered is not None:
                participants = self._sio.manager.get_participants("/", room)
                self._delivered(event, sum(1 for sid, _ in participants if sid not in (skip or ())))
            await self._sio.emit(event, payload, room=room, skip_sid=skip or None)
            return
        targets = [
            eio_sid
            for sid, eio_sid in self._sio.manager.get_participants("/", room)
            if not skip or sid not in skip
        ]
        if targets:
            if self._delivered is not None:
                self._delivered(event, len(targets))
            await send_to_each(self._sio, event, payload, targets)

    async def to_everyone(
        self, event: str, payload: dict[str, Any], *, except_user: int | None = None
    ) -> None:
        # Presence goes to every socket: in batches (`engine.EveryoneBatch`), so that when many
        # connect at once each socket gets their events in one write every 100 ms, not one
        # write per event (the connect storm's largest cost, docs/benchmarks.md "Chat fan-out").
        if self._everyone is not None:
            self._everyone.add(
                event, payload, user_room(except_user) if except_user is not None else None
            )
            return
        skip = self.sids_of(except_user) if except_user is not None else []
        skip.extend(self.service_sids)
        await self._send(event, payload, None, skip)

    async def to_user(
        self, user_id: int, event: str, payload: dict[str, Any], *, except_sid: str | None = None
    ) -> None:
        await self._send(event, payload, user_room(user_id), [except_sid] if except_sid else None)

    async def to_socket(self, sid: str, event: str, payload: dict[str, Any]) -> None:
        await self._send(event, payload, sid)

    async def to_room(
        self,
        room_id: int,
        event: str,
        payload: dict[str, Any],
        *,
        except_sid: str | None = None,
        except_user: int | None = None,
    ) -> None:
        skip = self.sids_of(except_user) if except_user is not None else []
        if except_sid is not None:
            skip.append(except_sid)
        await self._send(event, payload, chat_room(room_id), skip)

    async def join_room(self, user_id: int, room_id: int) -> None:
        for sid in self.sids_of(user_id):
            await self._sio.enter_room(sid, chat_room(room_id))

    async def leave_room(self, user_id: int, room_id: int) -> None:
        for sid in self.sids_of(user_id):
            await self._sio.leave_room(sid, chat_room(room_id))


class RealtimeGateway:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        auth: AuthService,
        presence: PresenceService,
        chat: ChatService,
        calls: CallService,
        limiter: RateLimiter,
        clock: Clock,
        *,
        services: ServiceSockets | None = None,
        service_key: Callable[[], str] | None = None,
        service_sids: set[str] | None = None,
        socket_joined: Callable[[str], None] | None = None,
        socket_listed: Callable[[str], None] | None = None,
        heap: HeapTrimmer | None = None,
    ) -> None:
        self._sio = sio
        #: Told the number of user sockets as it changes (gives memory back after a wave leaves).
        self._heap = heap
        #: Told each user socket that connects, before its presence list is made.
        self._socket_joined = socket_joined
        self._socket_listed = socket_listed
        self._auth = auth
        self._presence = presence
        self._chat = chat
        self._calls = calls
        self._limiter = limiter
        self._clock = clock
        self._sessions: dict[str, SocketSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._services = services
        self._service_key = service_key
        # Shared with the notifier, which keeps broadcasts away from them.
        self._service_sids: set[str] = service_sids if service_sids is not None else set()
        self._service_events: dict[str, Callable[[str, tuple[Any, ...]], Awaitable[Ack]]] = {}
        self._user_events: set[str] = set()
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        sio.on("*", self._on_unknown)
        self._register_session_events()
        auth.on_family_revoked(self.close_family)
        auth.on_user_closed(self.close_user)

    # -- helpers used by other handlers ----------------------------------------------------

    def on(
        self,
        name: str,
        model: type[M],
        event_class: EventClass | None,
        *,
        quiet_when_limited: bool = False,
        timer: Callable[[float], None] | None = None,
    ) -> Callable[[EventBody[M]], EventBody[M]]:
        """Register a client event: authenticated, rate limited, payload validated, and always
        answered with a typed ack. The body returns the ack's fields. `timer` (a metric's
        observe) gets the seconds from the event's arrival to its ack."""

        def register(body: EventBody[M]) -> EventBody[M]:
            async def handler(sid: str, *args: Any) -> Ack:
                if sid in self._service_sids:
                    service_handler = self._service_events.get(name)
                    if service_handler is not None:
                        return await service_handler(sid, args)

                async def work() -> Ack:
                    principal = self.principal(sid)
                    if event_class is not None:
                        await self._take(sid, principal, name, event_class, quiet_when_limited)
                    return ok(**await body(sid, principal, parse(model, single_payload(args))))

                if timer is None:
                    return await guarded(name, work)
                started = time.perf_counter()
                ack = await guarded(name, work)
                timer(time.perf_counter() - started)
                return ack

            self._sio.on(name, handler)
            self._user_events.add(name)
            return body

        return register

    def on_service(self, name: str, model: type[M]) -> Callable[[ServiceBody[M]], ServiceBody[M]]:
        """Register an event only the recorder service's socket may send (user sockets get
        `forbidden`). An event name users also send (registered with `on`) is dispatched by
        the sender: the recorder's socket here, users there."""

        def register(body: ServiceBody[M]) -> ServiceBody[M]:
            async def service_handler(sid: str, args: tuple[Any, ...]) -> Ack:
                async def work() -> Ack:
                    return ok(**await body(sid, parse(model, single_payload(args))))

                return await guarded(name, work)

            async def handler(sid: str, *args: Any) -> Ack:
                if sid in self._service_sids:
                    return await service_handler(sid, args)
                return fail(AppError(ErrorCode.FORBIDDEN, "only the recorder service sends that"))

            self._service_events[name] = service_handler
            if name not in self._user_events:
                self._sio.on(name, handler)
            return body

        return register

    async def _take(
        self, sid: str, principal: Principal, event: str, event_class: EventClass, quiet: bool
    ) -> None:
        decision = await self._limiter.take(principal.user_id, event_class)
        if decision.allowed:
            return
        error = AppError(
            ErrorCode.RATE_LIMITED,
            f"too many {event_class.value} events; slow down",
            retry_after=decision.retry_after,
        )
        if decision.abusive:
            self._spawn(
                self.close(sid, ErrorCode.RATE_LIMITED, "too many events for too long"),
                name=f"close-{sid}",
            )
        elif not quiet:
            await self._sio.emit(
                RATE_LIMITED,
                {"event": event, "retry_after": round(decision.retry_after, 3)},
                to=sid,
            )
        raise error

    def principal(self, sid: str) -> Principal:
        if sid in self._service_sids:
            raise AppError(ErrorCode.FORBIDDEN, "a service socket cannot send user events")
        session = self._sessions.get(sid)
        if session is None or session.closing:
            raise AppError(ErrorCode.TOKEN_INVALID, "socket is not authenticated")
        return session.principal

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._heap is not None:
            self._heap.stop()
        for session in self._sessions.values():
            if session.expiry is not None:
                session.expiry.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, sid: str, reason: ErrorCode, message: str) -> None:
        """Tell the client why, then disconnect it."""
        session = self._sessions.get(sid)
        if session is None or session.closing:
            return
        session.closing = True
        await self._sio.emit(SESSION_CLOSE, {"reason": reason.value, "message": message}, to=sid)
        await self._sio.disconnect(sid)

    async def close_family(self, family: str) -> None:
        for sid, session in list(self._sessions.items()):
            if session.principal.token.family == family:
                await self.close(sid, ErrorCode.TOKEN_REVOKED, "session was revoked")

    async def close_user(self, user_id: int, reason: ErrorCode, message: str) -> None:
        """Close every open socket of the user (account disabled or deleted)."""
        for sid, session in list(self._sessions.items()):
            if session.principal.user_id == user_id:
                await self.close(sid, reason, message)

    # -- token expiry --------------------------------------------------------------------

    def _schedule_expiry(self, sid: str, session: SocketSession) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
        delay = max(0.0, session.principal.token.expires_at - self._clock())
        session.expiry = asyncio.get_running_loop().call_later(delay, self._expired, sid)

    def _expired(self, sid: str) -> None:
        session = self._sessions.get(sid)
        if session is not None:
            session.expiry = None  # fired: nothing left to cancel
        closing = self.close(sid, ErrorCode.TOKEN_EXPIRED, "access token expired")
        self._spawn(closing, name=f"expiry-{sid}")

    # -- handlers ------------------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if isinstance(auth, dict) and "service" in auth:
            await self._connect_service(sid, auth)
            return
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            if token is None or token == "":
                raise AppError(ErrorCode.TOKEN_MISSING, "connect with auth={token: <access JWT>}")
            principal = await self._auth.authenticate(token)
            if principal.must_change_password:
                raise AppError(
                    ErrorCode.PASSWORD_CHANGE_REQUIRED,
                    "change your password first (POST /api/account/password)",
                )
        except AppError as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                exc.code.value, exc.to_payload()
            ) from None
        session = SocketSession(principal)
        self._sessions[sid] = session
        if self._socket_joined is not None:
            self._socket_joined(sid)
        if self._heap is not None:
            self._heap.sockets_changed(len(self._sessions))
        await self._sio.enter_room(sid, user_room(principal.user_id))
        for room_id in await self._chat.room_ids_of(principal.user_id):
            await self._sio.enter_room(sid, chat_room(room_id))
        self._schedule_expiry(sid, session)
        await self._presence.connected(principal.user_id, principal.username, sid)
        # Sent once the CONNECT packet has gone out, so the client is ready for it.
        self._spawn(self._send_presence_list(sid), name=f"presence-list-{sid}")

    async def _connect_service(self, sid: str, auth: dict[str, Any]) -> None:
        """The recorder: its key from the data dir, no principal, no presence, no rooms."""
        services, accepted = self._services, False
        if auth.get("service") == RECORDER and services is not None:
            try:
                expected = self._service_key() if self._service_key is not None else ""
                accepted = key_matches(expected, auth.get("key"))
            except UnicodeEncodeError:  # an offered key with lone surrogates (JSON allows them)
                pass
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("the recorder's service key cannot be read: %s", type(exc).__name__)
        if services is None or not accepted:
            error = AppError(ErrorCode.TOKEN_INVALID, "service credential refused")
            raise socketio.exceptions.ConnectionRefusedError(error.code.value, error.to_payload())
        self._service_sids.add(sid)
        log.info("the recorder service connected")
        await services.recorder_connected(sid)

    async def _send_presence_list(self, sid: str) -> None:
        await asyncio.sleep(0)
        if self._socket_listed is not None:
            self._socket_listed(sid)  # presence from here on reaches it as events
        await self._sio.emit(PRESENCE_LIST, await self._presence_payload(), to=sid)

    async def _presence_payload(self) -> dict[str, Any]:
        return {"users": await self._presence.listing()}

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        if sid in self._service_sids:
            self._service_sids.discard(sid)
            log.info("the recorder service disconnected")
            if self._services is not None:
                await self._services.recorder_gone(sid)
            return
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        if self._heap is not None:
            self._heap.sockets_changed(len(self._sessions))
        if session.expiry is not None:
            session.expiry.cancel()
        user_id = session.principal.user_id
        log.debug("socket %s of user %s left: %s", sid, user_id, reason)
        await self._presence.disconnected(user_id, sid)
        sockets_left = await self._presence.socket_count(user_id)
        await self._calls.socket_gone(user_id, sid, sockets_left)
        if sockets_left == 0:
            await self._chat.user_gone(user_id)

    def _register_session_events(self) -> None:
        @self.on(AUTH_REFRESH, TokenPayload, None)
        async def auth_refresh(sid: str, current: Principal, data: TokenPayload) -> dict[str, Any]:
            fresh = await self._auth.authenticate(data.token)
            if fresh.user_id != current.user_id:
                raise AppError(ErrorCode.FORBIDDEN, "token belongs to another user")
            session = self._sessions[sid]
            session.principal = fresh
            self._schedule_expiry(sid, session)
            return {"expires_at": fresh.token.expires_at}

        @self.on(PRESENCE_LIST, AnyPayload, None)
        async def presence_list(sid: str, current: Principal, data: AnyPayload) -> dict[str, Any]:
            return await self._presence_payload()

    async def _on_unknown(self, event: str, sid: str, *args: Any) -> Ack:
        return fail(AppError(ErrorCode.INVALID_REQUEST, f"unknown event {event[:64]!r}"))
