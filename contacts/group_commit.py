"""Group commit: callers that arrive while a transaction is being written join the next one.

Each caller still awaits its own result, which is set only after the shared transaction has
committed, so "durable before success" holds for every one of them. A batch function returns
one result per item, or the exception for that item alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchFn = Callable[[Sequence[Item]], Awaitable[list[Result | BaseException]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self, batch: BatchFn[Item, Result], max_batch: int = 64, concurrency: int = 1
    ) -> None:
        """`concurrency`: how many transactions may be written at once (1 for SQLite, which
        has one writer anyway; more for PostgreSQL, which commits in parallel)."""
        self._batch = batch
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._writers) < self._concurrency:
            self._writers.add(asyncio.create_task(self._write()))
        return await future

    async def _write(self) -> None:
        try:
            await self._drain()
        finally:
            # Leave the set in the same step that saw the queue empty (no await in between):
            # a caller arriving a moment later must find room to start a new writer.
            task = asyncio.current_task()
            if task is not None:
                self._writers.discard(task)

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                results = await self._batch([item for item, _ in batch])
            except BaseException as error:  # the shared commit failed: nobody was stored
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
