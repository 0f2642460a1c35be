"""Explicit wiring: every service of the `web` process, built once at start-up."""

from __future__ import annotations

from appliance.adapters.object_store import MinioObjectStore
from appliance.config import Settings
from appliance.observability.access import MetricsAccess
from appliance.observability.metrics import Metrics
from appliance.services.accounts import AccountService
from appliance.services.auth import AuthService
from appliance.services.calls import CallService, MemoryCallStore
from appliance.services.chat import ChatService
from appliance.services.clock import Clock, wall_clock
from appliance.services.invitations import InvitationService
from appliance.services.media import MediaService
from appliance.services.notifier import Notifier
from appliance.services.passwords import PasswordService
from appliance.services.presence import MemoryPresenceStore, PresenceService
from appliance.services.ratelimit import MemoryRateLimiter
from appliance.services.recordings import RecorderChannel, RecordingService
from appliance.services.setup import SetupService
from appliance.services.throttle import LoginThrottle, MemoryAttemptStore
from appliance.services.tls import TlsManager
from appliance.services.tokens import TokenCodec
from appliance.services.turn import TurnCredentialService
from appliance.services.turnserver import turns_enabled
from appliance.storage.calls import CallRepository
from appliance.storage.database import Database
from appliance.storage.invitations import InvitationRepository
from appliance.storage.media import MediaRepository
from appliance.storage.message_writer import MessageWriter
from appliance.storage.messages import MessageRepository
from appliance.storage.recordings import RecordingRepository
from appliance.storage.rooms import RoomRepository
from appliance.storage.tokens import TokenRepository
from appliance.storage.users import UserRepository


class Container:
    """Owns the long-lived components; `start()` and `stop()` bring them up and down in order."""

    def __init__(
        self,
        settings: Settings,
        notifier: Notifier,
        clock: Clock = wall_clock,
        recorder: RecorderChannel | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        config = settings.config
        self.settings = settings
        self.clock = clock
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics_access = MetricsAccess(config.metrics)
        self.db = Database(
            settings.database_path,
            synchronous=config.database.synchronous,
            busy_timeout_ms=config.database.busy_timeout_ms,
        )
        self.users = UserRepository(self.db)
        self.tokens = TokenRepository(self.db)
        self.passwords = PasswordService()
        self.codec = TokenCodec(config.auth, clock)
        self.throttle = LoginThrottle(config.auth, MemoryAttemptStore(), clock)
        self.auth = AuthService(
            config.auth, self.users, self.tokens, self.passwords, self.codec, self.throttle, clock
        )
        self.presence = PresenceService(
            MemoryPresenceStore(), self.users, notifier, clock, grace=config.web.presence_grace
        )
        self.rooms = RoomRepository(self.db)
        self.messages = MessageRepository(self.db)
        self.writer = MessageWriter(
            self.messages, max_batch=config.chat.write_batch_max, metrics=self.metrics
        )
        self.chat = ChatService(
            config.chat, self.rooms, self.messages, self.writer, self.users, notifier, clock
        )
        self.limiter = MemoryRateLimiter(config.rate_limits, clock, metrics=self.metrics)
        self.calls = CallService(
            config.calls,
            MemoryCallStore(),
            CallRepository(self.db),
            self.users,
            self.presence,
            notifier,
            clock,
            metrics=self.metrics,
        )
        self.turn = TurnCredentialService(
            config.turn, clock, force_relay=config.calls.force_relay, tls=turns_enabled(config)
        )
        self.tls = TlsManager(settings)
        self.store = MinioObjectStore(config.storage)
        self.media = MediaService(
            config.storage,
            self.store,
            MediaRepository(self.db),
            self.chat,
            clock,
            metrics=self.metrics,
        )
        self.recordings = RecordingService(
            config.recording,
            config.storage,
            self.store,
            RecordingRepository(self.db),
            self.calls,
            notifier,
            recorder,
            self.media.base_url,
            clock,
            metrics=self.metrics,
        )
        self.setup = SetupService(settings, self.auth, self.users, self.passwords, clock)
        self.accounts = AccountService(
            self.users,
            self.tokens,
            self.auth,
            self.passwords,
            self.throttle,
            self.presence,
            self.chat,
            clock,
        )
        self.invitations = InvitationService(
            config.auth,
            InvitationRepository(self.db),
            self.users,
            self.auth,
            self.passwords,
            clock,
        )

    async def start(self) -> None:
        await self.tls.start()
        await self.db.start()
        await self.auth.prune()
        await self.presence.start()
        await self.chat.start()
        await self.calls.start()
        await self.media.start()
        await self.recordings.start()
        await self.setup.start()

    async def stop(self) -> None:
        await self.setup.stop()
        await self.recordings.stop()
        await self.media.stop()
        await self.calls.stop()
        await self.chat.stop()
        await self.presence.stop()
        await self.db.stop()
        await self.tls.stop()
