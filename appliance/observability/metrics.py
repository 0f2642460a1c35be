"""The web service's Prometheus metrics, on a registry of their own (never the global one, so
several servers in one process, as in the tests, do not collide).

Counters and histograms are updated where things happen, at most one cheap call per chat message
(the ack latency); batch-level figures are counted once per batch. Gauges that mirror state
(sockets, online users, calls, service health) are set from that state when `/metrics` is
scraped (`transport/http/metrics_routes.py`), so nothing is counted twice. docs/observability.md
lists every metric.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from appliance import __version__

PREFIX = "appliance"

LOGIN_OUTCOMES = ("ok", "failed", "throttled", "invalid")
CALL_SETUP_OUTCOMES = (
    "answered",
    "rejected",
    "missed",
    "cancelled",
    "busy",
    "unavailable",
    "failed",
)
UPLOAD_OUTCOMES = ("requested", "completed", "missing", "mismatch", "expired", "failed")
RECORDING_OUTCOMES = ("started", "ready", "failed")
SERVICES = ("database", "store", "turn", "recorder")
CALL_STATES = ("ringing", "active")

ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 5000)


def _name(name: str) -> str:
    return f"{PREFIX}_{name}"


class Metrics:
    """Every metric of the `web` process. Built once (in `WebApp`, handed to the container and
    from there to the services); `render()` gives the text exposition."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        if process:
            ProcessCollector(registry=registry)  # process_cpu_seconds_total, *_memory_bytes, fds
        info = Gauge(_name("info"), "The running version.", ["version"], registry=registry)
        info.labels(__version__).set(1)

        # -- state, set at scrape time -------------------------------------------------------
        self.sockets = Gauge(
            _name("sockets_connected"), "Authenticated user sockets open now.", registry=registry
        )
        self.users_online = Gauge(
            _name("users_online"),
            "Users others see as online (including those in their presence grace period).",
            registry=registry,
        )
        self.calls_active = Gauge(
            _name("calls_active"), "Calls in progress, by state.", ["state"], registry=registry
        )
        self.recordings_active = Gauge(
            _name("recordings_active"),
            "Recordings starting or running now.",
            registry=registry,
        )
        self.service_up = Gauge(
            _name("service_up"),
            "1 when the service answers the same check as /healthz, else 0.",
            ["service"],
            registry=registry,
        )

        # -- events ----------------------------------------------------------------------------
        self.messages_stored = Counter(
            _name("messages_stored"),
            "Chat messages committed to the database (repeats of a client_msg_id not counted).",
            registry=registry,
        )
        self.events_delivered = Counter(
            _name("events_delivered"),
            "Recipient sockets a server event was sent to, by event "
            '(event="chat:message": messages delivered).',
            ["event"],
            registry=registry,
        )
        self.chat_ack_seconds = Histogram(
            _name("chat_ack_seconds"),
            "From a chat:message event received to its ack sent (committed), in seconds.",
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.write_batch_size = Histogram(
            _name("write_batch_size"),
            "Messages per database transaction of the group-commit writer.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.rate_limited = Counter(
            _name("rate_limited"),
            "Socket.IO events refused by a rate limit, by event class.",
            ["event_class"],
            registry=registry,
        )
        self.logins = Counter(
            _name("logins"), "Login attempts by outcome.", ["outcome"], registry=registry
        )
        self.call_setups = Counter(
            _name("call_setups"),
            "Calls that stopped ringing, by how (answered, rejected, missed, ...).",
            ["outcome"],
            registry=registry,
        )
        self.uploads = Counter(
            _name("uploads"), "File uploads by outcome.", ["outcome"], registry=registry
        )
        self.recordings = Counter(
            _name("recordings"),
            "Call recordings by what happened (started, ready, failed).",
            ["state"],
            registry=registry,
        )
        # Every known label shows from the start (at 0), so rate() and alerts work at once.
        self._zero(self.logins, LOGIN_OUTCOMES)
        self._zero(self.call_setups, CALL_SETUP_OUTCOMES)
        self._zero(self.uploads, UPLOAD_OUTCOMES)
        self._zero(self.recordings, RECORDING_OUTCOMES)
        self._zero(self.calls_active, CALL_STATES)
        self._zero(self.service_up, SERVICES)
        self._delivered: dict[str, Counter] = {}
        self._limited: dict[str, Counter] = {}

    @staticmethod
    def _zero(metric: Counter | Gauge, labels: Iterable[str]) -> None:
        for label in labels:
            metric.labels(label)

    # -- the few calls the hot paths make (label children cached: one dict lookup) ---------

    def delivered(self, event: str, sockets: int) -> None:
        child = self._delivered.get(event)
        if child is None:
            child = self._delivered[event] = self.events_delivered.labels(event)
        child.inc(sockets)

    def limited(self, event_class: str) -> None:
        child = self._limited.get(event_class)
        if child is None:
            child = self._limited[event_class] = self.rate_limited.labels(event_class)
        child.inc()

    def batch_written(self, size: int, stored: int) -> None:
        self.write_batch_size.observe(size)
        if stored:
            self.messages_stored.inc(stored)

    # -- the rest --------------------------------------------------------------------------

    def login(self, outcome: str) -> None:
        self.logins.labels(outcome).inc()

    def call_setup(self, outcome: str) -> None:
        self.call_setups.labels(outcome).inc()

    def upload(self, outcome: str) -> None:
        self.uploads.labels(outcome).inc()

    def recording(self, state: str, count: int = 1) -> None:
        self.recordings.labels(state).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
