"""Chat: direct and group rooms, durable idempotent messages, history, catch-up, edits,
read receipts and typing indicators (ephemeral: never stored)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from appliance.config import ChatConfig
from appliance.errors import AppError, ErrorCode
from appliance.services.clock import Clock
from appliance.services.notifier import Notifier
from appliance.storage.message_writer import MessageWriter
from appliance.storage.messages import MessageRecord, MessageRepository, NewMessage
from appliance.storage.rooms import RoomRecord, RoomRepository
from appliance.storage.users import UserRepository

CHAT_MESSAGE = "chat:message"
CHAT_EDIT = "chat:edit"
CHAT_DELETE = "chat:delete"
CHAT_READ = "chat:read"
CHAT_TYPING = "chat:typing"
ROOM_JOINED = "room:joined"
ROOM_LEFT = "room:left"

CLIENT_MSG_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# C0 and C1 controls but tab and newline, DEL, and lone surrogates.
_FORBIDDEN_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def message_payload(record: MessageRecord) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": record.id,
        "room_id": record.room_id,
        "sender": {"user_id": record.sender_id, "username": record.sender_name},
        "text": record.text,
        "created_at": record.created_at,
        "client_msg_id": record.client_msg_id,
    }
    if record.edited_at is not None:
        payload["edited_at"] = record.edited_at
    if record.deleted_at is not None:
        payload["deleted"] = True
        payload["deleted_at"] = record.deleted_at
    elif record.attachment is not None:
        payload["attachment"] = {
            "media_id": record.attachment.media_id,
            "filename": record.attachment.filename,
            "content_type": record.attachment.content_type,
            "size": record.attachment.size,
        }
    return payload


@dataclass(frozen=True, slots=True)
class RoomView:
    room: RoomRecord
    members: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.room.id,
            "kind": self.room.kind,
            "name": self.room.name,
            "created_at": self.room.created_at,
            "members": self.members,
        }


class ChatService:
    def __init__(
        self,
        config: ChatConfig,
        rooms: RoomRepository,
        messages: MessageRepository,
        writer: MessageWriter,
        users: UserRepository,
        notifier: Notifier,
        clock: Clock,
    ) -> None:
        self._config = config
        self._rooms = rooms
        self._messages = messages
        self._writer = writer
        self._users = users
        self._notifier = notifier
        self._clock = clock
        # room id -> member ids; filled on first use, kept current by this service's changes.
        self._members: dict[int, frozenset[int]] = {}
        self._usernames: dict[int, str] = {}
        self._typing: dict[tuple[int, int], asyncio.Task[None]] = {}

    async def start(self) -> None:
        await self._writer.start()

    async def stop(self) -> None:
        for task in self._typing.values():
            task.cancel()
        await asyncio.gather(*self._typing.values(), return_exceptions=True)
        self._typing.clear()
        await self._writer.stop()

    # -- validation -------------------------------------------------------------------------

    def clean_text(self, text: str) -> str:
        text = text.strip()
        if not text:
            raise AppError(ErrorCode.INVALID_REQUEST, "text must not be empty")
        if len(text) > self._config.max_text_length:
            raise AppError(
                ErrorCode.INVALID_REQUEST,
                f"text is longer than {self._config.max_text_length} characters",
            )
        if _FORBIDDEN_CHARS.search(text):
            raise AppError(ErrorCode.INVALID_REQUEST, "text contains control characters")
        return text

    # -- membership -------------------------------------------------------------------------

    async def members_of(self, room_id: int) -> frozenset[int]:
        cached = self._members.get(room_id)
        if cached is None:
            cached = frozenset(await self._rooms.member_ids(room_id))
            self._members[room_id] = cached
        return cached

    async def _username(self, user_id: int) -> str:
        """Usernames never change, so each is read once."""
        name = self._usernames.get(user_id)
        if name is None:
            user = await self._users.by_id(user_id)
            name = user.username if user else ""
            self._usernames[user_id] = name
        return name

    async def require_member(self, user_id: int, room_id: int) -> frozenset[int]:
        """The room's members, or `not_found` for anyone outside it (existence is not told)."""
        members = await self.members_of(room_id)
        if user_id not in members:
            raise AppError(ErrorCode.NOT_FOUND, "no such room")
        return members

    async def room_ids_of(self, user_id: int) -> list[int]:
        return await self._rooms.room_ids_of(user_id)

    async def _view(self, room: RoomRecord) -> RoomView:
        members = [
            {
                "user_id": m.user_id,
                "username": m.username,
                "role": m.role,
                "last_read_id": m.last_read_id,
            }
            for m in await self._rooms.members(room.id)
        ]
        return RoomView(room, members)

    async def room(self, user_id: int, room_id: int) -> RoomView:
        await self.require_member(user_id, room_id)
        room = await self._rooms.get(room_id)
        if room is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such room")
        return await self._view(room)

    async def open_direct(self, user_id: int, other_id: int) -> RoomView:
        if other_id == user_id:
            raise AppError(ErrorCode.INVALID_REQUEST, "a direct room needs another user")
        if await self._users.by_id(other_id) is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such user")
        room, created = await self._rooms.get_or_create_direct(user_id, other_id, self._clock())
        view = await self._view(room)
        if created:
            self._members[room.id] = frozenset({user_id, other_id})
            for member in (user_id, other_id):
                await self._notifier.join_room(member, room.id)
                await self._notifier.to_user(member, ROOM_JOINED, {"room": view.payload()})
        return view

    async def create_group(self, user_id: int, name: str, member_ids: list[int]) -> RoomView:
        name = name.strip()
        if not name or len(name) > 80:
            raise AppError(ErrorCode.INVALID_REQUEST, "name must be 1-80 characters")
        wanted = set(member_ids) | {user_id}
        if len(wanted) > self._config.max_group_members:
            raise AppError(ErrorCode.INVALID_REQUEST, "too many members")
        for member in wanted:
            if await self._users.by_id(member) is None:
                raise AppError(ErrorCode.NOT_FOUND, f"no user with id {member}")
        room = await self._rooms.create_group(name, user_id, sorted(wanted), self._clock())
        self._members[room.id] = frozenset(wanted)
        view = await self._view(room)
        for member in wanted:
            await self._notifier.join_room(member, room.id)
            await self._notifier.to_user(member, ROOM_JOINED, {"room": view.payload()})
        return view

    async def _require_group_admin(self, user_id: int, room_id: int) -> RoomRecord:
        await self.require_member(user_id, room_id)
        room = await self._rooms.get(room_id)
        if room is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such room")
        if room.kind != "group":
            raise AppError(ErrorCode.FORBIDDEN, "direct rooms have fixed members")
        if await self._rooms.role(room_id, user_id) != "admin":
            raise AppError(ErrorCode.FORBIDDEN, "only room admins can change members")
        return room

    async def add_member(self, user_id: int, room_id: int, new_member: int) -> RoomView:
        room = await self._require_group_admin(user_id, room_id)
        if await self._users.by_id(new_member) is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such user")
        members = await self.members_of(room_id)
        if len(members) >= self._config.max_group_members:
            raise AppError(ErrorCode.INVALID_REQUEST, "the room is full")
        if await self._rooms.add_member(room_id, new_member, self._clock()):
            self._members[room_id] = members | {new_member}
            await self._notifier.join_room(new_member, room_id)
        view = await self._view(room)
        await self._notifier.to_room(room_id, ROOM_JOINED, {"room": view.payload()})
        return view

    async def remove_member(self, user_id: int, room_id: int, member: int) -> None:
        """Admins remove anyone; everyone may remove themselves (leave)."""
        if member == user_id:
            await self.require_member(user_id, room_id)
            room = await self._rooms.get(room_id)
            if room is None or room.kind != "group":
                raise AppError(ErrorCode.FORBIDDEN, "direct rooms cannot be left")
        else:
            await self._require_group_admin(user_id, room_id)
        members = await self.members_of(room_id)
        if member not in members:
            raise AppError(ErrorCode.NOT_FOUND, "not a member")
        await self._rooms.remove_member(room_id, member)
        self._members[room_id] = members - {member}
        payload = {"room_id": room_id, "user_id": member}
        await self._notifier.to_room(room_id, ROOM_LEFT, payload, except_user=member)
        await self._notifier.to_user(member, ROOM_LEFT, payload)
        await self._notifier.leave_room(member, room_id)
        await self._stop_typing(room_id, member, announce=True)

    async def list_rooms(self, user_id: int) -> list[dict[str, Any]]:
        result = []
        for summary in await self._rooms.summaries(user_id):
            view = await self._view(summary.room)
            last = await self._messages.last(summary.room.id)
            entry = view.payload()
            entry["unread"] = summary.unread
            entry["last_message"] = message_payload(last) if last else None
            result.append(entry)
        return result

    # -- messages ---------------------------------------------------------------------------

    async def send(
        self,
        user_id: int,
        room_id: int,
        text: str,
        client_msg_id: str,
        *,
        sid: str | None,
        media_id: str | None = None,
    ) -> dict[str, Any]:
        """Store and deliver a message; with `media_id`, a file message whose text (a caption)
        may be empty."""
        await self.require_member(user_id, room_id)
        if not CLIENT_MSG_ID.match(client_msg_id):
            raise AppError(
                ErrorCode.INVALID_REQUEST, "client_msg_id must be 1-64 of A-Z a-z 0-9 _ . : -"
            )
        text = self.clean_text(text) if media_id is None or text.strip() else ""
        record, created = await self._writer.write(
            NewMessage(
                room_id,
                user_id,
                client_msg_id,
                text,
                self._clock(),
                media_id,
                await self._username(user_id),
            )
        )
        payload = message_payload(record)
        if created:
            await self._notifier.to_room(room_id, CHAT_MESSAGE, payload, except_sid=sid)
            await self._stop_typing(room_id, user_id, announce=True)
        return payload

    async def history(
        self, user_id: int, room_id: int, before: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of messages, newest first (limit capped), and the `before` of the next page."""
        await self.require_member(user_id, room_id)
        limit = max(1, min(limit, self._config.history_max_limit))
        found = await self._messages.history(room_id, before, limit + 1)
        page = [message_payload(m) for m in found[:limit]]
        return page, (page[-1]["id"] if len(found) > limit else None)

    async def catch_up(self, user_id: int, cursors: dict[int, int]) -> list[dict[str, Any]]:
        """Per room, the messages after the client's last id, oldest first."""
        result = []
        cap = self._config.sync_max_messages
        for room_id, last_id in cursors.items():
            if user_id not in await self.members_of(room_id):
                # Left, removed or never there: said per room, the others still answered.
                result.append({"room_id": room_id, "error": {"code": "not_found"}})
                continue
            found = await self._messages.after(room_id, last_id, cap + 1)
            result.append(
                {
                    "room_id": room_id,
                    "messages": [message_payload(m) for m in found[:cap]],
                    "has_more": len(found) > cap,
                }
            )
        return result

    async def _own_message(self, user_id: int, message_id: int) -> MessageRecord:
        record = await self._messages.get(message_id)
        if record is None or user_id not in await self.members_of(record.room_id):
            raise AppError(ErrorCode.NOT_FOUND, "no such message")
        if record.sender_id != user_id:
            raise AppError(ErrorCode.FORBIDDEN, "only the sender can change a message")
        if record.deleted_at is not None:
            raise AppError(ErrorCode.NOT_FOUND, "message was deleted")
        return record

    async def edit(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        await self._own_message(user_id, message_id)
        text = self.clean_text(text)
        record = await self._messages.edit(message_id, user_id, text, self._clock())
        if record is None:
            raise AppError(ErrorCode.NOT_FOUND, "message was deleted")
        payload = message_payload(record)
        await self._notifier.to_room(record.room_id, CHAT_EDIT, {"message": payload})
        return payload

    async def delete(self, user_id: int, message_id: int) -> dict[str, Any]:
        await self._own_message(user_id, message_id)
        record = await self._messages.delete(message_id, user_id, self._clock())
        if record is None:
            raise AppError(ErrorCode.NOT_FOUND, "message was deleted")
        payload = {"room_id": record.room_id, "message_id": record.id}
        await self._notifier.to_room(record.room_id, CHAT_DELETE, payload)
        return payload

    async def mark_read(self, user_id: int, room_id: int, message_id: int) -> dict[str, Any]:
        await self.require_member(user_id, room_id)
        record = await self._messages.get(message_id)
        if record is None or record.room_id != room_id:
            raise AppError(ErrorCode.NOT_FOUND, "no such message in this room")
        position, moved = await self._rooms.mark_read(room_id, user_id, message_id)
        unread = await self._rooms.unread(room_id, user_id)
        if moved:
            await self._notifier.to_room(
                room_id,
                CHAT_READ,
                {"room_id": room_id, "user_id": user_id, "message_id": position},
            )
        return {"room_id": room_id, "message_id": position, "unread": unread}

    # -- typing (ephemeral) -----------------------------------------------------------------

    async def typing(self, user_id: int, room_id: int, typing: bool) -> None:
        await self.require_member(user_id, room_id)
        if not typing:
            await self._stop_typing(room_id, user_id, announce=True)
            return
        key = (room_id, user_id)
        previous = self._typing.pop(key, None)
        if previous is not None:
            previous.cancel()  # refreshed: restart the expiry, others already know
        else:
            await self._notifier.to_room(
                room_id,
                CHAT_TYPING,
                {"room_id": room_id, "user_id": user_id, "typing": True},
                except_user=user_id,
            )
        self._typing[key] = asyncio.create_task(self._expire_typing(room_id, user_id))

    async def _expire_typing(self, room_id: int, user_id: int) -> None:
        await asyncio.sleep(self._config.typing_ttl)
        self._typing.pop((room_id, user_id), None)
        await self._announce_typing_stopped(room_id, user_id)

    async def _stop_typing(self, room_id: int, user_id: int, *, announce: bool) -> None:
        task = self._typing.pop((room_id, user_id), None)
        if task is None:
            return
        task.cancel()
        if announce:
            await self._announce_typing_stopped(room_id, user_id)

    async def _announce_typing_stopped(self, room_id: int, user_id: int) -> None:
        await self._notifier.to_room(
            room_id,
            CHAT_TYPING,
            {"room_id": room_id, "user_id": user_id, "typing": False},
            except_user=user_id,
        )

    async def user_gone(self, user_id: int) -> None:
        """The user's last socket left: their typing states end now."""
        for room_id, typer in list(self._typing):
            if typer == user_id:
                await self._stop_typing(room_id, user_id, announce=True)
