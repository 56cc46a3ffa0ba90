"""Writes asked for at once are made together (group commit): a write alone goes at once, those
asked for while one runs go together in the next round, and each caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from batch_poller.store.transactions import Coalesced


class Refused(Exception):
    pass


class Writer:
    """Writes rounds, one at a time, as the tests let it; answers each key with its value
    doubled, or Refused for a negative one."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, int]] = []
        self.writing = asyncio.Event()
        self.go_on = asyncio.Event()
        self.go_on.set()
        self.fail_with: Exception | None = None

    async def write_all(self, values: dict[str, int]) -> Mapping[str, int | Exception]:
        self.rounds.append(values)
        self.writing.set()
        await self.go_on.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return {k: Refused(k) if v < 0 else 2 * v for k, v in values.items()}


async def test_writes_asked_for_at_once_go_in_one_round() -> None:
    writer = Writer()
    write = Coalesced(writer.write_all)

    results = await asyncio.gather(*(write(f"k{n}", n) for n in range(10)))

    assert results == [2 * n for n in range(10)]
    assert writer.rounds == [{f"k{n}": n for n in range(10)}]


async def test_a_write_alone_does_not_wait_and_those_asked_during_it_go_next_together() -> None:
    writer = Writer()
    writer.go_on.clear()
    write = Coalesced(writer.write_all)

    first = asyncio.ensure_future(write("a", 1))
    await writer.writing.wait()  # written at once, alone
    later = [asyncio.ensure_future(write(k, 2)) for k in ("b", "c", "d")]
    await asyncio.sleep(0)
    assert writer.rounds == [{"a": 1}]
    writer.go_on.set()

    assert await first == 2
    assert [await task for task in later] == [4, 4, 4]
    assert writer.rounds == [{"a": 1}, {"b": 2, "c": 2, "d": 2}]


async def test_a_key_refused_is_its_caller_s_alone_and_a_failed_round_everyone_s() -> None:
    writer = Writer()
    write = Coalesced(writer.write_all)

    refused, written = await asyncio.gather(
        write("bad", -1), write("good", 1), return_exceptions=True
    )
    assert isinstance(refused, Refused) and written == 2

    writer.fail_with = OSError("the database went away")
    outcomes = await asyncio.gather(write("x", 1), write("y", 2), return_exceptions=True)
    assert all(outcome is writer.fail_with for outcome in outcomes)
    writer.fail_with = None
    assert await write("z", 3) == 6  # the next round is written as usual


async def test_the_same_key_twice_at_once_is_written_in_two_rounds() -> None:
    writer = Writer()
    write = Coalesced(writer.write_all)

    assert await asyncio.gather(write("a", 1), write("a", 5), write("b", 2)) == [2, 10, 4]
    assert writer.rounds == [{"a": 1, "b": 2}, {"a": 5}]


async def test_a_cancelled_caller_leaves_its_round_to_be_written() -> None:
    writer = Writer()
    writer.go_on.clear()
    write = Coalesced(writer.write_all)

    caller = asyncio.ensure_future(write("a", 1))
    await writer.writing.wait()
    caller.cancel()
    await asyncio.sleep(0)
    assert not caller.done()  # it waits for its write to be made
    writer.go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert writer.rounds == [{"a": 1}]
