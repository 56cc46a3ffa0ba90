"""The processes sharing a database: each one's heartbeat row, the jobs each holds, and the
leases of a dead process on the same machine freed as soon as another process joins."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from store_testlib import NOW, arn

from batch_poller.identity import Identity, process_alive
from batch_poller.store import JobStore, NewJob
from batch_poller.store.tables import replicas
from tests.helpers import another_process

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
LEASE = timedelta(minutes=5)  # JobStore's default lease


async def rows(store: JobStore) -> dict[str, dict[str, Any]]:
    async with store.engine.connect() as conn:
        found = await conn.execute(select(replicas))
        return {row.owner: dict(row._mapping) for row in found}


async def holders(store: JobStore) -> dict[str, str | None]:
    return {j.batch_job_arn: j.claimed_by for j in await store.list_jobs()}


async def track(store: JobStore, *numbers: int) -> None:
    for n in numbers:
        await store.track_job(NewJob(arn(n)), NOW)


async def hold(store: JobStore, *numbers: int) -> None:
    for n in numbers:
        claimed = await store.leases.claim(1, NOW, check_interval_seconds=0, only=arn(n))
        assert [j.batch_job_arn for j in claimed] == [arn(n)]


def a_dead_pid() -> int:
    """A pid no process can have: above the kernel's largest."""
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    assert not process_alive(pid)
    return pid


def neighbour(store: JobStore, pid: int, token: str) -> JobStore:
    """Another process on this machine (same boot and pid namespace) with that pid."""
    me = store.tenancy.identity
    return JobStore(store.engine, Identity(me.host, pid, token, me.local_key))


async def test_join_writes_this_process_row(store: JobStore) -> None:
    me = store.tenancy.identity
    await store.replicas.join("daemon", NOW)
    assert await store.replicas.free_dead_neighbours(NOW) == []
    assert await rows(store) == {
        store.owner: {
            "owner": store.owner,
            "host": me.host,
            "pid": os.getpid(),
            "local_key": me.local_key,
            "role": "daemon",
            "started_at": NOW,
            "seen_at": NOW,
            "last_pass_at": None,
        }
    }
    # Joining again keeps when it started; a beat moves seen_at, and last_pass_at after a pass.
    await store.replicas.join("command", NOW + MINUTE)
    await store.replicas.beat(NOW + 2 * MINUTE)
    row = (await rows(store))[store.owner]
    assert (row["role"], row["started_at"], row["seen_at"], row["last_pass_at"]) == (
        "command",
        NOW,
        NOW + 2 * MINUTE,
        None,
    )
    await store.replicas.beat(NOW + 3 * MINUTE, passed=True)
    row = (await rows(store))[store.owner]
    assert (row["seen_at"], row["last_pass_at"]) == (NOW + 3 * MINUTE, NOW + 3 * MINUTE)


async def test_live_lists_recent_processes_with_the_jobs_they_hold(store: JobStore) -> None:
    await track(store, 1, 2, 3, 4)
    other = JobStore(store.engine, another_process())
    await store.replicas.join("daemon", NOW)
    await other.replicas.join("command", NOW + SECOND)
    await hold(store, 2, 1)
    await hold(other, 3)

    live = await store.replicas.live(NOW + MINUTE, within=2 * MINUTE)
    assert [(r.owner, r.role, r.pid, r.jobs) for r in live] == [
        (store.owner, "daemon", os.getpid(), (arn(1), arn(2))),
        (other.owner, "command", 1, (arn(3),)),
    ]
    assert live[0].as_dict()["jobs"] == [arn(1), arn(2)]

    # A process not seen within the window is not listed; a lease that ran out is not held.
    await store.replicas.beat(NOW + 4 * MINUTE)
    later = await store.replicas.live(NOW + LEASE, within=2 * MINUTE)
    assert [(r.owner, r.jobs) for r in later] == [(store.owner, ())]


async def test_the_leases_of_dead_processes_on_this_machine_are_freed(
    store: JobStore,
) -> None:
    await track(store, 1, 2, 3, 4, 5, 6)
    dead = neighbour(store, a_dead_pid(), "dead01")
    alive = neighbour(store, os.getppid(), "alive1")  # pytest's parent: it runs
    # This very pid under another token: a process this one replaced (a pid reused).
    replaced = neighbour(store, os.getpid(), "old001")
    # A dead pid on another machine says nothing: its leases run out by themselves.
    far = JobStore(store.engine, Identity("elsewhere", a_dead_pid(), "far001", "elsewhere|x"))
    for process in (alive, replaced, far, dead):
        await process.replicas.join("daemon", NOW)
    for process, numbers in ((dead, (1, 2)), (alive, (3,)), (replaced, (4,)), (far, (5,))):
        await hold(process, *numbers)

    await store.replicas.join("daemon", NOW + SECOND)
    found_dead = await store.replicas.free_dead_neighbours(NOW + SECOND)

    assert sorted(found_dead) == sorted([dead.owner, replaced.owner])
    assert await holders(store) == {
        arn(1): None,
        arn(2): None,
        arn(3): alive.owner,
        arn(4): None,
        arn(5): far.owner,
        arn(6): None,
    }
    assert set(await rows(store)) == {store.owner, alive.owner, far.owner}
    # Their jobs are free to claim at once, long before the leases would have run out.
    claimed = await store.leases.claim(10, NOW + SECOND, check_interval_seconds=0)
    assert {j.batch_job_arn for j in claimed} == {arn(1), arn(2), arn(4), arn(6)}


async def test_rows_not_seen_for_a_day_are_forgotten(store: JobStore) -> None:
    await track(store, 1)
    gone = JobStore(store.engine, another_process("gone"))
    recent = JobStore(store.engine, another_process("recent"))
    await gone.replicas.join("daemon", NOW - timedelta(days=1, seconds=1))
    await recent.replicas.join("daemon", NOW - timedelta(hours=23))
    await store.replicas.join("daemon", NOW)
    await store.replicas.free_dead_neighbours(NOW)
    assert set(await rows(store)) == {recent.owner, store.owner}


async def test_leave_releases_every_lease_and_removes_the_row(store: JobStore) -> None:
    await track(store, 1, 2, 3)
    other = JobStore(store.engine, another_process())
    await store.replicas.join("daemon", NOW)
    await other.replicas.join("daemon", NOW)
    await hold(store, 1, 2)
    await hold(other, 3)

    await store.replicas.leave()

    assert await holders(store) == {arn(1): None, arn(2): None, arn(3): other.owner}
    assert set(await rows(store)) == {other.owner}
    free = await store.leases.claim(10, NOW, check_interval_seconds=0)
    assert {j.batch_job_arn for j in free} == {arn(1), arn(2)}


def test_a_zombie_counts_as_gone() -> None:
    """Killed but not reaped by its parent: its pid still answers a signal, yet it runs
    nothing and holds nothing."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert process_alive(child.pid)
        child.kill()
        # Not reaped: /proc shows it as a zombie once the kill has landed.
        for _ in range(500):
            if not process_alive(child.pid):
                break
            time.sleep(0.01)
        assert not process_alive(child.pid)
        os.kill(child.pid, 0)  # the pid still answers: only its state says it is gone
    finally:
        child.wait()
