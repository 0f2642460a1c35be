"""Serve the ASGI app with the chosen server (uvicorn by default; see docs/benchmarks.md)."""

from __future__ import annotations

import asyncio

from appliance.config import Settings
from appliance.transport.asgi import WebApp


def serve(settings: Settings, host: str, port: int) -> None:
    app = WebApp(settings, freeze_heap=True)
    web = settings.config.web
    if web.server == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config as HypercornConfig

        config = HypercornConfig()
        config.bind = [f"{host}:{port}"]
        config.websocket_max_message_size = web.max_http_buffer_size
        config.accesslog = None
        asyncio.run(hypercorn_serve(app.asgi, config))  # type: ignore[arg-type]
        return

    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app.asgi,
            host=host,
            port=port,
            loop="uvloop",
            ws="websockets-sansio",
            ws_max_size=web.max_http_buffer_size,
            lifespan="on",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
        )
    )
    server.run()
