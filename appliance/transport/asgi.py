"""The one ASGI app of the `web` service: Quart for HTTP, python-socketio for real time."""

from __future__ import annotations

import gc
import logging
from typing import Any
from urllib.parse import urlsplit

import socketio
from quart import Quart, Response
from quart_schema import Info, QuartSchema

from appliance import __version__
from appliance.adapters.service_key import ensure_service_key
from appliance.config import Settings, WebConfig
from appliance.container import Container
from appliance.observability.metrics import Metrics
from appliance.services.clock import Clock, wall_clock
from appliance.transport.http import (
    account_routes,
    admin_routes,
    auth_routes,
    calls_routes,
    doctor_routes,
    health,
    invitation_routes,
    media_routes,
    metrics_routes,
    recordings_routes,
    rooms_routes,
    setup_routes,
    trust,
    users_routes,
    webui,
)
from appliance.transport.http.deps import CONTAINER_KEY
from appliance.transport.http.errors import register_error_handlers
from appliance.transport.realtime.call_events import register_call_events
from appliance.transport.realtime.chat_events import register_chat_events
from appliance.transport.realtime.engine import socket_server
from appliance.transport.realtime.gateway import RealtimeGateway, SocketNotifier
from appliance.transport.realtime.heap import HeapTrimmer, glibc_malloc_trim
from appliance.transport.realtime.media_events import register_media_events
from appliance.transport.realtime.recording_events import (
    SocketRecorderChannel,
    register_recording_events,
)
from appliance.transport.realtime.wire import FastJSON, TextPacket
from appliance.transport.store_proxy import StoreProxy

log = logging.getLogger(__name__)

MAX_API_BODY = 64 * 1024
#: Allocations between two young garbage collections once start-up is done (default 700).
YOUNG_COLLECTION_THRESHOLD = 20_000

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
)


def origin_checker(config: WebConfig) -> Any:
    """Allow the configured origins and the page's own origin; never a wildcard."""
    allowed = set(config.public_origins)

    def check(origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return True  # not a browser cross-origin request (CLI clients, same-origin GETs)
        if origin.rstrip("/") in allowed:
            return True
        host = environ.get("HTTP_HOST", "")
        parts = urlsplit(origin)
        return bool(host) and parts.netloc == host and parts.scheme in ("http", "https")

    return check


class WebApp:
    """Holds the pieces so tests and the CLI can reach the container and the gateway."""

    def __init__(
        self, settings: Settings, clock: Clock = wall_clock, *, freeze_heap: bool = False
    ) -> None:
        web = settings.config.web
        self._freeze_heap = freeze_heap
        self.sio = socket_server(
            web.fast_paths,
            async_mode="asgi",
            cors_allowed_origins=origin_checker(web),
            max_http_buffer_size=web.max_http_buffer_size,
            ping_interval=web.ping_interval,
            ping_timeout=web.ping_timeout,
            logger=False,
            engineio_logger=False,
            serializer=TextPacket,
            json=FastJSON,
        )
        metrics = Metrics()
        self.notifier = SocketNotifier(self.sio, fast=web.fast_paths, delivered=metrics.delivered)
        self.container = Container(
            settings,
            self.notifier,
            clock,
            recorder=SocketRecorderChannel(self.sio),
            metrics=metrics,
        )
        services = self.container
        self.gateway = RealtimeGateway(
            self.sio,
            services.auth,
            services.presence,
            services.chat,
            services.calls,
            services.limiter,
            clock,
            services=services.recordings,
            service_key=lambda: ensure_service_key(settings.data_dir),
            service_sids=self.notifier.service_sids,
            socket_joined=self.notifier.socket_joined,
            socket_listed=self.notifier.socket_listed,
            # Only in a process of its own (`appliance web`), which runs on glibc's allocator.
            # Some of a closed socket is held a little longer (engine.io's first ping task
            # sleeps ping_interval): trims come ping_interval + 5 s after a wave, and again.
            heap=HeapTrimmer(glibc_malloc_trim(), settle=web.ping_interval + 5)
            if freeze_heap
            else None,
        )
        register_chat_events(self.gateway, services.chat, services.metrics)
        register_call_events(self.gateway, services.calls)
        register_media_events(self.gateway, services.media)
        register_recording_events(self.gateway, services.recordings)
        self.quart = self._build_quart(settings)
        self.store_proxy = StoreProxy(
            socketio.ASGIApp(self.sio, other_asgi_app=self.quart), settings.config.storage
        )
        self.asgi = self.store_proxy

    def _build_quart(self, settings: Settings) -> Quart:
        app = Quart("appliance")
        app.config["MAX_CONTENT_LENGTH"] = MAX_API_BODY
        app.config["JSON_SORT_KEYS"] = False
        app.extensions[CONTAINER_KEY] = self.container
        QuartSchema(
            app,
            info=Info(title="Appliance API", version=__version__),
            redoc_ui_path=None,
            scalar_ui_path=None,
            swagger_ui_path=None,
            security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
            conversion_preference="pydantic",
        )
        register_error_handlers(app)
        app.register_blueprint(auth_routes.blueprint)
        app.register_blueprint(account_routes.blueprint)
        app.register_blueprint(admin_routes.blueprint)
        app.register_blueprint(invitation_routes.blueprint)
        app.register_blueprint(users_routes.blueprint)
        app.register_blueprint(rooms_routes.blueprint)
        app.register_blueprint(calls_routes.blueprint)
        app.register_blueprint(media_routes.blueprint)
        app.register_blueprint(recordings_routes.blueprint)
        app.register_blueprint(health.blueprint)
        app.register_blueprint(doctor_routes.blueprint)
        app.register_blueprint(metrics_routes.blueprint)
        app.register_blueprint(trust.blueprint)
        app.register_blueprint(setup_routes.site_blueprint)
        app.register_blueprint(setup_routes.blueprint)
        app.register_blueprint(webui.make_blueprint(settings.webui_dir))

        @app.before_serving
        async def _start() -> None:
            await self.container.start()
            if self._freeze_heap:
                # Everything built so far (modules, schemas, services) lives as long as the
                # process: keep it out of the collector's full passes, which otherwise took
                # ~60 ms each, several times a second, under chat load (docs/benchmarks.md).
                gc.collect()
                gc.freeze()
                # A young collection every 20,000 allocations instead of 700: a chat message's
                # short-lived objects (frames, coroutines, futures) are then freed by their
                # reference counts before a collection can promote them, so the old generation
                # fills slowly and full passes, which scan every socket's objects (~0.3 s at
                # 2,000 sockets), become rare: they were a fifth of the CPU and the p99 tail
                # at 2,000 chat clients (docs/benchmarks.md, "Chat fan-out").
                gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])

        @app.after_serving
        async def _stop() -> None:
            # Close every socket first (their disconnect handlers still see the database),
            # then stop engine.io's service task, then the services.
            await self.sio.shutdown()
            await self.store_proxy.close()
            await self.gateway.stop()
            await self.container.stop()

        @app.after_request
        async def _headers(response: Response) -> Response:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            return response

        return app
