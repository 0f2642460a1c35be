"""Socket.IO event of media sharing: the upload is done, check it and announce it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.services.auth import Principal
from appliance.services.media import MediaService
from appliance.services.ratelimit import EventClass
from appliance.transport.realtime.gateway import RealtimeGateway


class UploadedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    media_id: str = Field(min_length=1, max_length=64)
    caption: str = Field(default="", max_length=100_000)


def register_media_events(gateway: RealtimeGateway, media: MediaService) -> None:
    @gateway.on("media:uploaded", UploadedIn, EventClass.MEDIA)
    async def uploaded(sid: str, who: Principal, data: UploadedIn) -> dict[str, Any]:
        message = await media.complete(who.user_id, data.media_id, data.caption, sid)
        return {"message": message}
