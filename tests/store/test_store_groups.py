"""Groups and the outbox in the store, on both databases: a group is compiled once whichever
process settles its last job, deliveries are claimed by one process at a time, and on
PostgreSQL a LISTENing application hears every event of the transaction that made it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from store_testlib import NOW, PG_URL, EngineFactory, arn

from batch_poller.domain import BedrockStatus, GroupStatus, JobStatus, Step, next_step
from batch_poller.store import GroupError, JobStore, NewJob, RecordTotals
from batch_poller.store.outbox import DeliveryState, HookRoute
from tests.helpers import another_process

LEASE = timedelta(minutes=5)
MINUTE = timedelta(minutes=1)


def finished(n: int) -> NewJob:
    return NewJob(arn=arn(n), bedrock_status=BedrockStatus.COMPLETED, status=JobStatus.IN_PROGRESS)


async def _settle(store: JobStore, n: int, records: int = 2) -> None:
    """Stores a job's results under its own lease, as a fetch does."""
    claimed = await store.leases.claim(1, NOW, check_interval_seconds=0, only=arn(n))
    assert [job.batch_job_arn for job in claimed] == [arn(n)]
    totals = RecordTotals(total=records, ok=records - 1, error=1, input_tokens=10)
    await store.mark_results_fetched(arn(n), totals, JobStatus.COMPLETED, NOW)


async def _types(store: JobStore, **subject: str) -> list[str]:
    return [event["type"] for event in await store.outbox.events(**subject)]


async def test_a_settled_job_waits_for_its_group_before_its_cleanup(store: JobStore) -> None:
    for n in (1, 2):
        await store.track_job(finished(n), NOW)
    await store.group_jobs([arn(1), arn(2)], "g", NOW, seal=True)
    await _settle(store, 1)

    first = await store.get_job(arn(1))
    assert first is not None and first.status is JobStatus.COMPLETED
    assert next_step(first) is None  # stored, but its group waits for the other job
    assert [j.batch_job_arn for j in await store.jobs_needing(Step.CLEAN)] == []

    await _settle(store, 2, records=3)
    group = await store.get_group("g")
    assert group is not None and group.status is GroupStatus.PARTIALLY_COMPLETED
    assert (group.total_records, group.error_records, group.input_tokens) == (5, 2, 20)
    cleanable = {j.batch_job_arn for j in await store.jobs_needing(Step.CLEAN)}
    assert cleanable == {arn(1), arn(2)}
    assert await _types(store, group_name="g") == [
        "job.settled",
        "job.settled",
        "group.completed",
    ]


async def test_the_last_two_jobs_settled_at_once_compile_their_group_once(
    store: JobStore, engine: AsyncEngine, engine_factory: EngineFactory
) -> None:
    """Two processes store the group's last two jobs at the same moment, again and again:
    the group is compiled every time, and once."""
    other = JobStore(await engine_factory(same_as=engine), another_process())
    for round_ in range(8):
        first, second = 10 * round_ + 1, 10 * round_ + 2
        for n in (first, second):
            await store.track_job(finished(n), NOW)
        name = f"race-{round_}"
        await store.group_jobs([arn(first), arn(second)], name, NOW, seal=True)
        await asyncio.gather(_settle(store, first), _settle(other, second))

        group = await store.get_group(name)
        assert group is not None and group.status is GroupStatus.PARTIALLY_COMPLETED, round_
        assert group.jobs == 2 and group.total_records == 4
        assert (await _types(store, group_name=name)).count("group.completed") == 1, round_


async def test_what_a_group_refuses(store: JobStore) -> None:
    for n in (1, 2, 3):
        await store.track_job(finished(n), NOW)
    await store.group_jobs([arn(1)], "sealed", NOW, seal=True)
    with pytest.raises(GroupError, match="'sealed' is sealed: it takes no more jobs"):
        await store.group_jobs([arn(2)], "sealed", NOW)
    with pytest.raises(GroupError, match="already in group 'sealed'"):
        await store.group_jobs([arn(1)], "other", NOW)
    with pytest.raises(GroupError, match=f"no tracked job {arn(9)}"):
        await store.group_jobs([arn(2), arn(9)], "other", NOW)
    with pytest.raises(GroupError, match="not a group name"):
        await store.group_jobs([arn(2)], "", NOW)
    # All or nothing: the refused call left job 2 out of any group, and made no group.
    job = await store.get_job(arn(2))
    assert job is not None and job.group_name is None
    assert await store.get_group("other") is None
    # Putting a job in its own group again changes nothing.
    again = await store.group_jobs([arn(3)], "open", NOW)
    again = await store.group_jobs([arn(3)], "open", NOW)
    assert again.jobs == 1 and again.status is GroupStatus.OPEN


async def test_a_sealed_group_no_settle_reached_is_compiled_by_the_sweep(store: JobStore) -> None:
    await store.track_job(finished(1), NOW)
    await _settle(store, 1)  # settled before it had a group (an older version, say)
    await store.group_jobs([arn(1)], "late", NOW)
    # Sealed by hand, around the store: nothing compiled it.
    from sqlalchemy import update

    from batch_poller.store.tables import job_groups

    async with store.engine.begin() as conn:
        await conn.execute(update(job_groups).values(status=GroupStatus.SEALED.value))
    assert await store.compile_ready_groups(NOW) == ["late"]
    assert await store.compile_ready_groups(NOW) == []
    group = await store.get_group("late")
    assert group is not None and group.status is GroupStatus.PARTIALLY_COMPLETED


async def test_deliveries_go_to_the_hooks_that_want_them_one_process_at_a_time(
    store: JobStore, engine: AsyncEngine, engine_factory: EngineFactory
) -> None:
    store.outbox.routes = (
        HookRoute("everything", frozenset({"*"})),
        HookRoute("groups", frozenset({"group.completed"})),
    )
    await store.track_job(finished(1), NOW)
    await store.group_jobs([arn(1)], "g", NOW, seal=True)
    await _settle(store, 1)

    other = JobStore(await engine_factory(same_as=engine), another_process())
    mine = await store.outbox.claim("everything", NOW, 10, LEASE)
    theirs = await other.outbox.claim("everything", NOW, 10, LEASE)
    groups = await other.outbox.claim("groups", NOW, 10, LEASE)
    assert [d.type for d in mine] == ["job.settled", "group.completed"]
    assert theirs == []  # leased to this process
    assert [d.type for d in groups] == ["group.completed"]
    assert json.loads(groups[0].payload)["group"]["name"] == "g"

    settled, compiled = mine
    assert await store.outbox.delivered(settled.id, NOW)
    assert not await other.outbox.delivered(compiled.id, NOW)  # not theirs to record
    retry_at = NOW + MINUTE
    assert await store.outbox.failed(compiled.id, "HTTP 503: busy", NOW, retry_at)
    assert await store.outbox.claim("everything", NOW, 10, LEASE) == []
    assert await store.outbox.next_due(["everything"]) == retry_at
    again = await other.outbox.claim("everything", retry_at, 10, LEASE)
    assert [(d.id, d.attempts, d.last_error) for d in again] == [(compiled.id, 1, "HTTP 503: busy")]
    assert await other.outbox.failed(compiled.id, "HTTP 503: busy", retry_at, None)

    dead = await store.outbox.deliveries(DeliveryState.DEAD)
    assert [(d.id, d.hook, d.attempts) for d in dead] == [(compiled.id, "everything", 2)]
    hooks = ["everything", "groups"]
    assert await store.outbox.retry_dead(retry_at, [compiled.id + 1000], hooks=hooks) == 0
    assert await store.outbox.retry_dead(retry_at, hooks=["groups"]) == 0  # not that hook's
    assert await store.outbox.retry_dead(retry_at, hooks=hooks) == 1
    revived = await store.outbox.claim("everything", retry_at, 10, LEASE)
    assert [(d.id, d.attempts, d.state) for d in revived] == [
        (compiled.id, 0, DeliveryState.PENDING)
    ]
    # A delivered event is never claimed again.
    assert await store.outbox.delivered(compiled.id, retry_at)
    assert await store.outbox.claim("everything", retry_at + LEASE * 2, 10, LEASE) == []


async def test_a_process_that_left_gives_its_claimed_deliveries_back(
    store: JobStore, engine: AsyncEngine, engine_factory: EngineFactory
) -> None:
    store.outbox.routes = (HookRoute("h", frozenset({"*"})),)
    await store.track_job(finished(1), NOW)
    await _settle(store, 1)
    other = JobStore(await engine_factory(same_as=engine), another_process())
    await other.replicas.join("daemon", NOW)
    assert len(await other.outbox.claim("h", NOW, 10, LEASE)) == 1
    assert await store.outbox.claim("h", NOW, 10, LEASE) == []
    await other.replicas.leave()
    assert len(await store.outbox.claim("h", NOW, 10, LEASE)) == 1


async def test_listen_hears_the_notify_of_a_compile(
    backend: str, store: JobStore, engine: AsyncEngine
) -> None:
    if backend != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    url = make_url(PG_URL)
    listener = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("batch_poller", lambda *args: heard.put_nowait(args[3]))
    try:
        await store.track_job(finished(1), NOW)
        await store.group_jobs([arn(1)], "listened", NOW, seal=True)
        await _settle(store, 1)
        first = json.loads(await asyncio.wait_for(heard.get(), 30))
        second = json.loads(await asyncio.wait_for(heard.get(), 30))
    finally:
        await listener.close()
    assert (first["type"], first["job"]["batch_job_arn"]) == ("job.settled", arn(1))
    assert (second["type"], second["group"]["name"]) == ("group.completed", "listened")
    assert second["group"]["status"] == "PARTIALLY_COMPLETED"
    stored = await store.outbox.events(group_name="listened")
    assert [event["id"] for event in stored] == [first["id"], second["id"]]


async def test_a_groups_records_page_job_after_job_from_any_cursor(store: JobStore) -> None:
    from batch_poller.store import RecordRow, RecordScope

    for n in (1, 2, 3, 4):
        await store.track_job(finished(n), NOW)
    await store.group_jobs([arn(1), arn(2), arn(3)], "paged", NOW)
    written = {1: ["a", "b", "c"], 2: [], 3: ["a", "d"], 4: ["z"]}  # job 4 is not in the group
    for n, ids in written.items():
        claimed = await store.leases.claim(1, NOW, check_interval_seconds=0, only=arn(n))
        assert claimed
        rows = [
            RecordRow(i, "error" if i == "c" else "ok", line_number=k) for k, i in enumerate(ids)
        ]
        await store.write_records(arn(n), rows, NOW)

    scope = RecordScope(group="paged")
    pages, after = [], None
    while True:
        page = await store.records_page(scope, after=after, limit=2)
        pages.append([(a[-1], r.record_id) for a, r in page])
        if len(page) < 2:
            break
        after = (page[-1][0], page[-1][1].record_id)
    assert pages == [[("1", "a"), ("1", "b")], [("1", "c"), ("3", "a")], [("3", "d")]]
    errors = await store.records_page(scope, outcome="error")
    assert [(a, r.record_id) for a, r in errors] == [(arn(1), "c")]
    by_id = await store.records_page(RecordScope(record_id="a"))
    assert [a for a, _ in by_id] == [arn(1), arn(3)]
    with pytest.raises(ValueError, match="names one job, one group or one record id"):
        RecordScope(job=arn(1), group="paged")


async def test_two_requests_putting_one_job_in_two_groups_cannot_both_succeed(
    store: JobStore, engine: AsyncEngine, engine_factory: EngineFactory
) -> None:
    other = JobStore(await engine_factory(same_as=engine), another_process())
    for round_ in range(6):
        await store.track_job(finished(100 + round_), NOW)
        job = arn(100 + round_)
        mine, theirs = f"mine-{round_}", f"theirs-{round_}"
        results = await asyncio.gather(
            store.group_jobs([job], mine, NOW),
            other.group_jobs([job], theirs, NOW),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, GroupError)]
        assert len(refused) == 1 and refused[0].kind == "conflict", results
        tracked = await store.get_job(job)
        assert tracked is not None and tracked.group_name in (mine, theirs)
        loser = theirs if tracked.group_name == mine else mine
        # The refused request left nothing behind: no empty group of its own.
        assert await store.get_group(loser) is None


async def test_putting_a_member_in_its_sealed_group_again_is_harmless(store: JobStore) -> None:
    await store.track_job(finished(1), NOW)
    first = await store.group_jobs([arn(1)], "again", NOW, seal=True)
    second = await store.group_jobs([arn(1)], "again", NOW, seal=True)
    assert first.status is second.status is GroupStatus.SEALED and second.jobs == 1


async def test_a_failed_job_tracked_again_reopens_its_compiled_group(store: JobStore) -> None:
    await store.track_job(finished(1), NOW)
    running = NewJob(arn=arn(2), bedrock_status=BedrockStatus.IN_PROGRESS)
    await store.track_job(running, NOW)
    await store.group_jobs([arn(1), arn(2)], "requeued", NOW, seal=True)
    await _settle(store, 1)
    claimed = await store.leases.claim(1, NOW, check_interval_seconds=0, only=arn(2))
    assert claimed
    await store.mark_check_failed(arn(2), "AccessDeniedException", NOW)
    await store.leases.release()
    group = await store.get_group("requeued")
    assert group is not None and group.status is GroupStatus.FAILED

    requeued = await store.requeue_failed(
        arn(2),
        bedrock_status=BedrockStatus.COMPLETED,
        status=JobStatus.IN_PROGRESS,
        message=None,
        now=NOW + MINUTE,
    )
    assert requeued
    group = await store.get_group("requeued")
    assert group is not None and group.status is GroupStatus.SEALED
    assert group.compiled_at is None and group.total_records is None
    first = await store.get_job(arn(1))
    assert first is not None and first.group_compiled_at is None and next_step(first) is None

    await _settle(store, 2, records=3)
    group = await store.get_group("requeued")
    assert group is not None and group.status is GroupStatus.PARTIALLY_COMPLETED
    assert (group.failed_jobs, group.total_records) == (0, 5)
    assert (await _types(store, group_name="requeued")).count("group.completed") == 2


async def test_lookups_with_a_nul_find_what_was_stored_and_never_fail(store: JobStore) -> None:
    from batch_poller.store import RecordRow, RecordScope

    await store.track_job(finished(1), NOW)
    claimed = await store.leases.claim(1, NOW, check_interval_seconds=0, only=arn(1))
    assert claimed
    await store.write_records(arn(1), [RecordRow("x\x00y", "error", error_code="E\x00")], NOW)

    [(found_arn, found)] = await store.records_page(RecordScope(record_id="x\x00y"))
    assert (found_arn, found.record_id) == (arn(1), "x\ufffdy")
    by_code = await store.records_page(RecordScope(job=arn(1)), error_code="E\x00")
    assert [r.record_id for _, r in by_code] == ["x\ufffdy"]
    after = await store.records_page(RecordScope(job=arn(1)), after=(arn(1), "a\x00"))
    assert [r.record_id for _, r in after] == ["x\ufffdy"]
    assert await store.get_group("g\x00") is None
    with pytest.raises(GroupError, match="no group"):
        await store.seal_group("g\x00", NOW)


async def test_a_bedrock_message_with_a_nul_still_settles_its_job(store: JobStore) -> None:
    running = NewJob(arn=arn(1), bedrock_status=BedrockStatus.IN_PROGRESS, job_name="n\x00me")
    await store.track_job(running, NOW)
    await store.group_jobs([arn(1)], "nul", NOW, seal=True)
    claimed = await store.leases.claim(1, NOW, check_interval_seconds=0, only=arn(1))
    assert claimed
    await store.record_check(
        arn(1),
        bedrock_status=BedrockStatus.FAILED,
        status=JobStatus.FAILED,
        message="bad\x00input",
        completed_at=NOW,
        now=NOW,
    )
    job = await store.get_job(arn(1))
    assert job is not None and job.status is JobStatus.FAILED
    assert (job.message, job.job_name) == ("bad\ufffdinput", "n\ufffdme")
    group = await store.get_group("nul")
    assert group is not None and group.status is GroupStatus.FAILED
    [event] = [e for e in await store.outbox.events(batch_job_arn=arn(1))]
    assert event["type"] == "job.failed" and event["job"]["message"] == "bad\ufffdinput"
