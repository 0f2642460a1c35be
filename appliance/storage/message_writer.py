"""Group commit: concurrent message inserts share one transaction (one fsync) per batch.

Each `write()` waits until the batch holding its message has committed, so an ack sent after it
never covers a row that could still be lost.
"""

from __future__ import annotations

import asyncio
import logging

from appliance.observability.metrics import Metrics
from appliance.storage.messages import MessageRecord, MessageRepository, NewMessage

log = logging.getLogger(__name__)

_Pending = tuple[NewMessage, asyncio.Future[tuple[MessageRecord, bool]]]


class MessageWriter:
    def __init__(
        self,
        repository: MessageRepository,
        *,
        max_batch: int = 256,
        metrics: Metrics | None = None,
    ) -> None:
        self._repository = repository
        self._metrics = metrics
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()  # None: stop
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # for tests and metrics: how many transactions were committed

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="message-writer")

    async def stop(self) -> None:
        if self._task is None:
            return
        # Everything queued before the marker is still written.
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def write(self, message: NewMessage) -> tuple[MessageRecord, bool]:
        if self._task is None or self._task.done():
            raise RuntimeError("message writer is not running")
        future: asyncio.Future[tuple[MessageRecord, bool]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait((message, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self._repository.insert_batch([m for m, _ in batch])
        except Exception as exc:
            log.exception("writing a batch of %d messages failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        if self._metrics is not None:  # once per batch: the size, and the rows new in it
            self._metrics.batch_written(len(batch), sum(1 for _, created in results if created))
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
