"""Replicas sharing one PostgreSQL database, as real `batch-poller run` processes on the
emulator and the moto server, and one daemon riding out a PostgreSQL restart.

Three replicas work through sixty finished jobs while one is SIGKILLed in the middle of an
ingest and another is SIGSTOPped while it holds leases mid-ingest, kept stopped until the
survivor has taken its jobs over and finished them, then woken. Two more cases freeze a replica
where a lease alone does not protect the others: inside one of its write transactions, and in
the middle of a cleanup, between listing a folder and deleting what it listed. Every record
must be stored once, every owned S3 object deleted once, and a replica that wakes must write
and delete nothing more for the jobs it lost.

Each replica reads S3 through a slow link of its own (a proxy that relays response bodies a
piece at a time and notes every DeleteObjects request it passes on), so that work is under way
long enough to be interrupted, and every deletion is known by the replica that made it. The
expected records are read from the emulator's output objects before any daemon starts, with
`json` and a split on newlines, never with the daemon's parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from batch_poller.emulator.control import EmulatorControl
from batch_poller.emulator.server import Endpoints
from tests.daemon_fixtures import PG_ADMIN_URL
from tests.processes import Daemon, running
from tests.service.db_faults import PrivateCluster
from tests.service.replica_lab import (
    RESULTS,
    SlowS3,
    all_settled,
    bucket_violations,
    config_for,
    events,
    freeze_mid_ingest,
    ingesting,
    owner_of,
    partly_stored,
    record_violations,
    replicas,
    slow_links,
    slow_record_writes,
    started,
    status_document,
    stop,
    tracked_jobs,
    unsettled,
    until,
    wake_and_settle,
)


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A new database on the shared server, dropped after the test."""
    name = f"bp_replicas_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {error}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_three_replicas_one_killed_one_frozen_store_every_record_and_delete_every_folder_once(
    tmp_path: Path,
    endpoints: Endpoints,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
    database: str,
) -> None:
    begun = time.monotonic()
    jobs, by_arn = await tracked_jobs(tmp_path, endpoints, database, control, bedrock, s3, 60)
    db = await asyncpg.connect(database)
    try:
        with contextlib.ExitStack() as stack:
            daemons, links = replicas(stack, tmp_path, endpoints, database, "abc", "b")
            stack.callback(_let_go, daemons, links)
            killed, frozen_one, survivor = daemons
            await until(started(*daemons), "three replicas to start", daemons)
            owners = [owner_of(d) for d in daemons]
            assert len(set(owners)) == 3, owners

            # The status of one replica names it and lists all three.
            async def all_listed() -> bool:
                document = await asyncio.to_thread(status_document, survivor)
                listed = {replica["owner"] for replica in document["replicas"]}
                return document["replica"] == owners[2] and set(owners) <= listed

            await until(all_listed, "the status to list the three replicas", daemons)

            # SIGKILL in the middle of an ingest, once the replica has stored a job already.
            await until(lambda: ingesting(db, killed, owners[0], by_arn), "an ingest", daemons)
            killed.signal(signal.SIGKILL)
            assert killed.wait(timeout=10) == -signal.SIGKILL
            cut_short = await partly_stored(db, owners[0], by_arn)
            assert cut_short, "the kill did not land mid-ingest"

            # SIGSTOP while it holds leases mid-ingest, between two of its transactions; kept
            # stopped until the survivor has taken over and finished every job it held.
            port = urlsplit(database).port or 5432
            frozen = await freeze_mid_ingest(
                db, frozen_one, links[1], by_arn, port, inside_a_write=False
            )
            assert frozen.fetching, frozen.held
            violations = await wake_and_settle(db, frozen, by_arn, [survivor])
        violations += await record_violations(db, jobs)
    finally:
        await db.close()
    violations += await bucket_violations(s3, jobs, links)
    assert not violations, "\n".join(violations[:40])

    # The survivor took over the jobs the frozen one was fetching; the killed one's jobs were
    # finished by another replica.
    assert frozen.fetching <= {e.get("job_arn") for e in events(survivor, name="results_stored")}
    taken = {e.get("job_arn") for d in daemons[1:] for e in events(d, name="results_stored")}
    assert set(cut_short) <= taken

    # Work spread: results stored by at least two replicas, each job's by one at most, and
    # each job's cleanup completed by one.
    stored_by = [
        (e["replica"], e["job_arn"]) for d in daemons for e in events(d, name="results_stored")
    ]
    by_replica = Counter(replica for replica, _ in stored_by)
    assert len(by_replica) >= 2, by_replica
    assert max(Counter(arn for _, arn in stored_by).values()) == 1, stored_by
    cleaned = Counter(e["job_arn"] for d in daemons for e in events(d, name="cleanup_completed"))
    assert max(cleaned.values()) == 1, cleaned.most_common(3)
    print(
        f"\nthree replicas: {time.monotonic() - begun:.1f} s; stops tried {frozen.attempts}; "
        f"the frozen one held {len(frozen.held)} ({len(frozen.fetching)} fetching); the killed "
        f"one cut {len(cut_short)} short; results stored by replica {dict(by_replica)}"
    )


async def test_a_replica_frozen_inside_a_write_transaction_loses_its_jobs_when_its_lease_ends(
    tmp_path: Path,
    endpoints: Endpoints,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
    database: str,
) -> None:
    """Its open transaction keeps the job rows it wrote locked, and claims skip locked rows:
    its jobs must still go to the other replica once the lease has run out, not only when the
    server ends the frozen transaction."""
    begun = time.monotonic()
    jobs, by_arn = await tracked_jobs(tmp_path, endpoints, database, control, bedrock, s3, 24)
    db = await asyncpg.connect(database)
    await slow_record_writes(db)
    try:
        with contextlib.ExitStack() as stack:
            daemons, links = replicas(stack, tmp_path, endpoints, database, "bc", "b")
            stack.callback(_let_go, daemons, links)
            await until(started(*daemons), "two replicas to start", daemons)
            port = urlsplit(database).port or 5432
            frozen = await freeze_mid_ingest(
                db, daemons[0], links[0], by_arn, port, inside_a_write=True
            )
            violations = await wake_and_settle(db, frozen, by_arn, daemons[1:])
        violations += await record_violations(db, jobs)
    finally:
        await db.close()
    violations += await bucket_violations(s3, jobs, links)
    assert not violations, "\n".join(violations[:40])
    print(
        f"\nfrozen inside a write: {time.monotonic() - begun:.1f} s; stops tried "
        f"{frozen.attempts}; open: {frozen.transactions}"
    )


async def test_a_replica_frozen_between_listing_a_folder_and_deleting_it_deletes_nothing_after(
    tmp_path: Path,
    endpoints: Endpoints,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
    database: str,
) -> None:
    """A cleanup lists a folder, then deletes what the listing named. A replica frozen while
    the listing comes back, woken after the other replica has taken the job over and cleaned
    it, must not delete from the listing it got before it lost the lease."""
    begun = time.monotonic()
    jobs, by_arn = await tracked_jobs(tmp_path, endpoints, database, control, bedrock, s3, 8)
    db = await asyncpg.connect(database)
    try:
        with contextlib.ExitStack() as stack:
            daemons, links = replicas(stack, tmp_path, endpoints, database, "bc", "b")
            stack.callback(_let_go, daemons, links)
            frozen_one, link = daemons[0], links[0]
            link.hold_relisting = "in/"
            await until(started(*daemons), "two replicas to start", daemons)
            folder = await until(
                lambda: _holding(link), "a cleanup's listing of an input folder", daemons
            )
            frozen = await stop(frozen_one, owner_of(frozen_one), link, db)
            job = next(job for job in jobs if job.input_folder == folder)
            assert job.arn in frozen.held, (folder, frozen.held)
            assert frozen.held[job.arn]["results_fetched_at"] is not None
            violations = await wake_and_settle(db, frozen, by_arn, daemons[1:])
            lost = {e.get("job_arn") for e in events(frozen_one, frozen.log_offset, "lease_lost")}
            assert job.arn in lost
        violations += await record_violations(db, jobs)
    finally:
        await db.close()
    violations += await bucket_violations(s3, jobs, links)
    assert not violations, "\n".join(violations[:40])
    print(f"\nfrozen between a listing and its deletion: {time.monotonic() - begun:.1f} s")


async def test_a_postgresql_restart_under_a_running_daemon_is_ridden_out_and_every_job_finishes(
    tmp_path: Path,
    endpoints: Endpoints,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
) -> None:
    """The daemon's own private cluster is stopped while jobs are being ingested and started
    again once the daemon has logged the outage; the lease is left at its default."""
    begun = time.monotonic()
    with PrivateCluster.create() as cluster, slow_links(endpoints.s3, "d") as links:
        url = cluster.url()
        jobs, by_arn = await tracked_jobs(tmp_path, endpoints, url, control, bedrock, s3, 16)
        config = config_for(
            tmp_path / "daemon",
            Endpoints(endpoints.bedrock, links[0].url),
            url,
            poller={"interval_seconds": 1, "check_interval_seconds": 0, "max_concurrent_jobs": 4},
            results=RESULTS,
        )
        with running(config) as daemon:
            await until(started(daemon), "the start", [daemon])
            owner = owner_of(daemon)
            db = await asyncpg.connect(url)
            try:
                cut = await until(
                    lambda: partly_stored(db, owner, by_arn), "an ingest under way", [daemon]
                )
            finally:
                await db.close()
            offset = daemon.log_path.stat().st_size
            cluster.stop()
            stopped_at = time.monotonic()

            # The outage is logged (the pass fails), and the daemon goes on.
            async def outage_logged() -> bool:
                return bool(events(daemon, offset, "pass_failed"))

            await until(outage_logged, "the outage in the log", [daemon])
            assert daemon.process.poll() is None
            down = time.monotonic() - stopped_at
            cluster.start()

            db = await asyncpg.connect(url)
            try:
                await until(
                    all_settled(db, len(jobs)), "every job settled", [daemon], unsettled(db)
                )
                daemon.signal(signal.SIGTERM)
                assert daemon.wait(timeout=30) == 0, daemon.tail()
                violations = await record_violations(db, jobs)
            finally:
                await db.close()
    violations += await bucket_violations(s3, jobs, links)
    assert not violations, "\n".join(violations[:40])

    # What the log says of the outage: the jobs cut short stored after it, the passes back, a
    # transaction that met the outage tried again, and no traceback: the database's failures
    # are expected ones, told in a line each.
    log = events(daemon, offset)
    stored = {e.get("job_arn") for e in log if e.get("event") == "results_stored"}
    retried = [e.get("attempt") for e in log if e.get("event") == "database_retry"]
    text = daemon.log_path.read_text()
    problems = [f"cut short, never stored: {arn}" for arn in sorted(set(cut) - stored)]
    if not any(e.get("event") == "passes_recovered" for e in log):
        problems.append("no passes_recovered after the outage")
    if not any(isinstance(attempt, int) and attempt >= 2 for attempt in retried):
        problems.append(f"no transaction tried a second time (database_retry attempts {retried})")
    problems += [
        f"a traceback after {e.get('event')}: {str(e.get('error') or e.get('exception'))[-200:]}"
        for e in log
        if "Traceback" in str(e.get("exception", ""))
    ]
    problems += [line for line in text.splitlines() if "never retrieved" in line]
    assert not problems, "\n".join(problems)
    print(f"\npostgresql restart: {time.monotonic() - begun:.1f} s, down {down:.1f} s")


async def _holding(link: SlowS3) -> str | None:
    return link.holding


def _let_go(daemons: Sequence[Daemon], links: Sequence[SlowS3]) -> None:
    """After a failed test: a replica left stopped would ignore the SIGTERM that ends it, and
    one waiting for a held listing would take its time to stop."""
    for link in links:
        link.release()
    for daemon in daemons:
        if daemon.process.poll() is None:
            daemon.signal(signal.SIGCONT)
