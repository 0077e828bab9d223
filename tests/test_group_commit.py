"""Group commit: every caller gets its own result after its batch, none is ever left waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from contacts.group_commit import GroupCommit


async def test_sequential_callers_never_wait_forever() -> None:
    batches: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        await asyncio.sleep(0)
        return [item * 2 for item in items]

    group: GroupCommit[int, int] = GroupCommit(write)
    for number in range(200):  # each caller submits right as the previous writer finishes
        assert await asyncio.wait_for(group.submit(number), timeout=2) == number * 2
    assert len(batches) == 200


async def test_concurrent_callers_share_batches_and_writers_stay_bounded() -> None:
    running = 0
    most = 0

    async def write(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)
        running -= 1
        return [ValueError(item) if item == 7 else item for item in items]

    group: GroupCommit[int, int] = GroupCommit(write, max_batch=8, concurrency=2)
    results = await asyncio.gather(*(group.submit(n) for n in range(50)), return_exceptions=True)
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i != 7] == [n for n in range(50) if n != 7]
    assert most == 2


async def test_a_failed_commit_fails_every_caller_of_that_batch() -> None:
    async def write(items: Sequence[int]) -> list[int | BaseException]:
        raise OSError("disk full")

    group: GroupCommit[int, int] = GroupCommit(write)
    results = await asyncio.gather(*(group.submit(n) for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    with pytest.raises(OSError):
        await group.submit(99)
