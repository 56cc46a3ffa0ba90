"""The replica tests' apparatus: slow S3 links that note every deletion, jobs made on the
emulator with their expected records, a throwaway PostgreSQL database, and the checks run on
what the replicas left (records once, deletions once, nothing written after a lost lease)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from batch_poller.app import open_runtime
from batch_poller.config import load_settings
from batch_poller.emulator.control import EmulatorControl
from batch_poller.emulator.server import Endpoints
from batch_poller.tracking import track_jobs
from tests.faults.proxy import FaultProxy, body_pieces, read_head
from tests.helpers import create_job, ensure_bucket, make_records, put_input, read_object
from tests.processes import DEADLINE, Daemon, running, write_config

BUCKET = "replicas"
# Small waits everywhere: the tests wait for states and events, never for these to pass.
FAST_DATABASE = {"connect_retry_base_seconds": 0.05, "connect_retry_max_seconds": 0.4}
RESULTS = {"batch_size": 5, "max_retries": 10, "retry_base_seconds": 0.05}
REPLICA_POLLER = {
    "interval_seconds": 1,
    "check_interval_seconds": 0,
    "max_concurrent_jobs": 4,
    "lease_seconds": 6,
}
# The slow link: a response body comes this many bytes at a time, a pause between pieces.
PIECE_BYTES = 1024
PIECE_PAUSE = 0.02
# Objects no cleanup may touch.
BYSTANDERS = {"out/keep.txt": b"beside the job folders\n", "in/keep.jsonl": b"not a job's input\n"}
SETTLED = "status = 'COMPLETED' AND cleanup_completed_at IS NOT NULL"


# -- S3 behind a slow link ------------------------------------------------------------------------


class SlowS3(FaultProxy):
    """Relays every response body PIECE_BYTES at a time with a pause between pieces (a slow
    network between one replica and S3), and notes every DeleteObjects request as it passes
    it on: when (monotonic) and which keys.

    With `hold_relisting` set to a key prefix, the answer to the second ListObjectsV2 of one
    folder under it (a cleanup lists a folder to check it, then again to delete what it holds)
    is held back, as a slow network would, until `release()`."""

    def __init__(self, target: str, name: str) -> None:
        super().__init__(target)
        self.name = name
        self.deletions: list[tuple[float, list[str]]] = []
        self.hold_relisting: str | None = None
        self.holding: str | None = None  # the folder whose listing is held back now
        self._listings: Counter[str] = Counter()
        self._released = threading.Event()

    async def _relay_one(
        self,
        client_in: asyncio.StreamReader,
        client_out: asyncio.StreamWriter,
        upstream_in: asyncio.StreamReader,
        upstream_out: asyncio.StreamWriter,
    ) -> bool:
        request = await read_head(client_in)
        if request is None:
            return False
        body = b"".join([piece async for piece in body_pieces(client_in, request, None)])
        method, path = request.first_line.split(" ")[:2]
        query = parse_qs(urlsplit(path).query, keep_blank_values=True)
        upstream_out.write(request.raw + body)
        await upstream_out.drain()
        if method == "POST" and "delete" in query:
            keys = [html.unescape(k.decode()) for k in re.findall(rb"<Key>(.*?)</Key>", body)]
            self.deletions.append((time.monotonic(), keys))
        response = await read_head(upstream_in)
        if response is None:
            return False
        if method == "GET" and "list-type" in query:
            await self._maybe_hold(query.get("prefix", [""])[0])
        client_out.write(response.raw)
        await client_out.drain()
        async for data in body_pieces(upstream_in, response, method):
            for start in range(0, len(data), PIECE_BYTES):
                await asyncio.sleep(PIECE_PAUSE)
                client_out.write(data[start : start + PIECE_BYTES])
                await client_out.drain()
        return (response.header("connection") or "").lower() != "close"

    async def _maybe_hold(self, prefix: str) -> None:
        self._listings[prefix] += 1
        relisted = self._listings[prefix] == 2
        if self.hold_relisting and prefix.startswith(self.hold_relisting) and relisted:
            self.hold_relisting = None  # once
            self.holding = prefix
            await asyncio.to_thread(self._released.wait)

    def release(self) -> None:
        """Lets a held listing go on (from any thread)."""
        self.holding = None
        self._released.set()


@contextlib.contextmanager
def slow_links(target: str, names: str) -> Iterator[list[SlowS3]]:
    """A slow link to S3 for each name, on an event loop of their own thread: the test blocks
    its own loop at times (signals, process waits) and must not hold the replicas back."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="slow-s3", daemon=True)
    thread.start()
    links = [SlowS3(target, name) for name in names]

    def run(work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=10)

    try:
        for link in links:
            run(link.start())
        yield links
    finally:
        for link in links:
            link.release()
            run(link.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# -- the jobs -------------------------------------------------------------------------------------


@dataclass
class Job:
    arn: str
    input_folder: str
    output_folder: str
    # record id -> (output file, line number, modelOutput), read from the emulator's objects
    outputs: dict[str, tuple[str, int, Any]] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)  # owned key -> size


async def make_jobs(bedrock: Any, s3: Any, control: EmulatorControl, count: int) -> list[Job]:
    """`count` jobs finished Completed at the emulator, 20 to 50 records each, each with its
    own input folder; what each wrote is read back independently."""
    await ensure_bucket(s3, BUCKET)

    async def one(number: int) -> Job:
        folder = f"in/job-{number:02d}/"
        records = make_records(20 + (number * 7) % 31, prefix=f"j{number:02d}-")
        source = await put_input(s3, f"{folder}input.jsonl", records, bucket=BUCKET)
        arn = await create_job(
            bedrock, source, name=f"replicas-{number:02d}", output_uri=f"s3://{BUCKET}/out/"
        )
        await control.finish(arn, "Completed")
        job = Job(arn, folder, f"out/{arn.rsplit('/', 1)[-1]}/")
        await _read_back(s3, job)
        assert len(job.outputs) == len(records), job
        return job

    jobs: list[Job] = []
    for start in range(0, count, 10):
        jobs += await asyncio.gather(*(one(n) for n in range(start, min(start + 10, count))))
    for key, body in BYSTANDERS.items():
        await s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return jobs


async def _read_back(s3: Any, job: Job) -> None:
    for folder in (job.input_folder, job.output_folder):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=folder)
        async for page in pages:
            job.objects.update((item["Key"], item["Size"]) for item in page.get("Contents", []))
    for key in job.objects:
        name = key[len(job.output_folder) :]
        if key.startswith(job.output_folder) and name.endswith(".jsonl.out"):
            data = await read_object(s3, key, BUCKET)
            for number, line in enumerate(data.split(b"\n"), start=1):
                if line.strip():
                    item = json.loads(line)
                    job.outputs[item["recordId"]] = (name, number, item["modelOutput"])


async def tracked_jobs(
    folder: Path,
    endpoints: Endpoints,
    url: str,
    control: EmulatorControl,
    bedrock: Any,
    s3: Any,
    count: int,
) -> tuple[list[Job], dict[str, Job]]:
    """`count` finished jobs on the emulator (its clock frozen), tracked in the database at
    `url` with their input folders; also by ARN."""
    await control.freeze_clock()
    jobs = await make_jobs(bedrock, s3, control, count)
    await track(config_for(folder / "track", endpoints, url), jobs)
    return jobs, {job.arn: job for job in jobs}


def config_for(folder: Path, endpoints: Endpoints, url: str, **sections: Any) -> Path:
    """A configuration file in a folder of its own."""
    folder.mkdir()
    return write_config(folder, endpoints, database={"url": url, **FAST_DATABASE}, **sections)


async def track(config: Path, jobs: Sequence[Job]) -> None:
    """Tracks every job with its input folder, as `batch-poller track --input-prefix` does."""
    async with open_runtime(load_settings(str(config))) as rt:
        for job in jobs:
            await track_jobs(rt, [job.arn], f"s3://{BUCKET}/{job.input_folder}")


# -- PostgreSQL -----------------------------------------------------------------------------------


async def held_by(db: asyncpg.Connection, owner: str) -> list[asyncpg.Record]:
    """The unfinished jobs `owner` holds a live lease on, with their records stored so far."""
    return list(
        await db.fetch(
            """
            SELECT j.batch_job_arn AS arn, j.results_fetched_at, j.claimed_until,
                   (SELECT count(*) FROM batch_records r
                     WHERE r.batch_job_arn = j.batch_job_arn) AS stored
              FROM bedrock_batch_jobs j
             WHERE j.claimed_by = $1 AND j.claimed_until > now()
               AND j.cleanup_completed_at IS NULL
            """,
            owner,
        )
    )


async def partly_stored(db: asyncpg.Connection, owner: str, jobs: dict[str, Job]) -> list[str]:
    """Jobs `owner` holds whose records are stored in part: an ingest under way."""
    return [
        row["arn"]
        for row in await held_by(db, owner)
        if row["results_fetched_at"] is None and 0 < row["stored"] < len(jobs[row["arn"]].outputs)
    ]


def all_settled(db: asyncpg.Connection, count: int) -> Callable[[], Awaitable[bool]]:
    async def settled() -> bool:
        found = await db.fetchval(f"SELECT count(*) FROM bedrock_batch_jobs WHERE {SETTLED}")
        return bool(found == count)

    return settled


def taken_over(
    db: asyncpg.Connection, arns: Sequence[str], owner: str
) -> Callable[[], Awaitable[bool]]:
    """Every one of `arns` finished, and not leased to `owner` any more."""

    async def done() -> bool:
        found = await db.fetchval(
            f"SELECT count(*) FROM bedrock_batch_jobs WHERE batch_job_arn = ANY($1) "
            f"AND {SETTLED} AND claimed_by IS DISTINCT FROM $2",
            list(arns),
            owner,
        )
        return bool(found == len(arns))

    return done


def client_ports(pid: int, server_port: int) -> list[int]:
    """The local ports of a process's TCP connections to the PostgreSQL server's port."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                ports.append(int(local.rsplit(":", 1)[1], 16))
    return ports


async def slow_record_writes(db: asyncpg.Connection, seconds: float = 0.3) -> None:
    """Every statement that stores records takes `seconds` longer, in the database itself: a
    replica's write transaction is then open long enough for a stop to land inside it."""
    await db.execute(
        f"""
        CREATE FUNCTION slow_record_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;
        CREATE TRIGGER slow_record_write AFTER INSERT ON batch_records
           FOR EACH STATEMENT EXECUTE FUNCTION slow_record_write();
        """
    )


async def write_transactions(db: asyncpg.Connection, pid: int, server_port: int) -> list[str]:
    """The sessions of process `pid` inside a transaction that has written or locked rows of the
    jobs or records tables (what a process frozen there keeps locked): their last statements."""
    rows = await db.fetch(
        """
        SELECT DISTINCT a.pid, a.state, left(a.query, 100) AS query FROM pg_stat_activity a
          JOIN pg_locks l ON l.pid = a.pid
          JOIN pg_class c ON c.oid = l.relation
         WHERE a.datname = current_database() AND a.client_port = ANY($1::int[])
           AND c.relname IN ('bedrock_batch_jobs', 'batch_records')
           AND l.mode IN ('RowExclusiveLock', 'RowShareLock')
        """,
        client_ports(pid, server_port),
    )
    return [f"{row['state']}: {row['query']}" for row in rows]


def unsettled(db: asyncpg.Connection) -> Callable[[], Awaitable[str]]:
    """The jobs not settled yet with their leases, and the sessions idle inside a transaction."""

    async def explain() -> str:
        jobs = await db.fetch(
            "SELECT now() AS now, batch_job_arn, status, results_fetched_at, claimed_by, "
            "claimed_until, results_fetch_attempts, last_error FROM bedrock_batch_jobs "
            f"WHERE NOT ({SETTLED}) ORDER BY batch_job_arn"
        )
        sessions = await db.fetch(
            "SELECT pid, client_port, state, now() - state_change AS in_state, "
            "left(query, 160) AS query FROM pg_stat_activity "
            "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        )
        lines = ["jobs not settled:", *(str(dict(r)) for r in jobs)]
        lines += ["sessions idle in a transaction:", *(str(dict(r)) for r in sessions)]
        return "\n".join(lines)

    return explain


# -- processes and their logs ---------------------------------------------------------------------


def events(daemon: Daemon, after: int = 0, name: str | None = None) -> list[dict[str, Any]]:
    """The daemon's log entries from byte `after` on, only those named `name` if given."""
    with daemon.log_path.open("rb") as log:
        log.seek(after)
        data = log.read()
    found = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and (name is None or entry.get("event") == name):
                found.append(entry)
    return found


def owner_of(daemon: Daemon) -> str:
    """The replica's lease owner, as its log entries name it."""
    return next(str(e["replica"]) for e in events(daemon) if "replica" in e)


def process_state(daemon: Daemon) -> str:
    """R, S, T (stopped)...: the state letter in /proc/PID/stat."""
    stat = Path(f"/proc/{daemon.process.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def status_document(daemon: Daemon) -> dict[str, Any]:
    base = str(events(daemon, name="http_listening")[0]["url"]).rstrip("/")
    with urllib.request.urlopen(f"{base}/api/batch/poller/status", timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


async def until(
    condition: Callable[[], Awaitable[Any]],
    what: str,
    alive: Sequence[Daemon] = (),
    explain: Callable[[], Awaitable[str]] | None = None,
) -> Any:
    """Waits for a state, the deadline only bounding a hang; a daemon in `alive` that exits
    meanwhile fails the wait. `explain` says what the state is when the wait gives up."""
    deadline = time.monotonic() + DEADLINE
    while not (value := await condition()):
        for daemon in alive:
            if daemon.process.poll() is not None:
                code = daemon.process.returncode
                raise AssertionError(f"a daemon exited ({code}) before {what}:\n{daemon.tail()}")
        if time.monotonic() > deadline:
            state = "" if explain is None else await explain()
            tails = "\n---\n".join(d.tail()[-1500:] for d in alive)
            raise AssertionError(f"gave up waiting for {what}\n{state}\n{tails}")
        await asyncio.sleep(0.05)
    return value


def started(*daemons: Daemon) -> Callable[[], Awaitable[bool]]:
    async def all_started() -> bool:
        return all(events(d, name="daemon_started") for d in daemons)

    return all_started


def replicas(
    stack: contextlib.ExitStack,
    folder: Path,
    endpoints: Endpoints,
    url: str,
    names: str,
    one_job_at_a_time: str = "",
) -> tuple[list[Daemon], list[SlowS3]]:
    """A `batch-poller run` per name, each on a slow link of its own, all on one database.
    Those named in `one_job_at_a_time` work on one job at a time: stopped mid-ingest, such a
    replica is in no other job's cleanup, whose DeleteObjects may already be past its lease
    check (the window reliability.md names), which is not what these tests claim."""
    links = stack.enter_context(slow_links(endpoints.s3, names))
    daemons = []
    for link in links:
        config = config_for(
            folder / link.name,
            Endpoints(endpoints.bedrock, link.url),
            url,
            poller={
                **REPLICA_POLLER,
                **({"max_concurrent_jobs": 1} if link.name in one_job_at_a_time else {}),
            },
            results=RESULTS,
        )
        daemons.append(stack.enter_context(running(config)))
    return daemons, links


@dataclass
class Frozen:
    """A replica stopped while it held leases."""

    daemon: Daemon
    owner: str
    link: SlowS3
    log_offset: int  # its log's size when it stopped: what follows was written after waking
    held: dict[str, asyncpg.Record]  # its unfinished jobs at the stop, as they were then
    attempts: int = 1  # stops tried until one landed where it was meant to
    transactions: list[str] = field(default_factory=list)  # its write transactions left open
    woke_at: float | None = None  # monotonic

    @property
    def fetching(self) -> set[str]:
        return {arn for arn, row in self.held.items() if row["results_fetched_at"] is None}


async def stop(daemon: Daemon, owner: str, link: SlowS3, db: asyncpg.Connection) -> Frozen:
    """SIGSTOP, and what the replica held at that moment."""
    daemon.signal(signal.SIGSTOP)
    await until(lambda: _state_is(daemon, "T"), "the replica to stop")
    offset = daemon.log_path.stat().st_size
    held = {row["arn"]: row for row in await held_by(db, owner)}
    return Frozen(daemon, owner, link, offset, held)


async def freeze_mid_ingest(
    db: asyncpg.Connection,
    daemon: Daemon,
    link: SlowS3,
    jobs: dict[str, Job],
    server_port: int,
    *,
    inside_a_write: bool,
) -> Frozen:
    """SIGSTOPs the replica once it has stored a job's results and holds a lease on a job whose
    records are stored in part, either between two of its transactions or inside one that has
    written rows; a stop that lands elsewhere is undone with SIGCONT and tried again."""
    owner = owner_of(daemon)
    notes: list[str] = []

    async def ready() -> bool:
        if not await ingesting(db, daemon, owner, jobs):
            return False
        return not inside_a_write or bool(
            await write_transactions(db, daemon.process.pid, server_port)
        )

    for attempt in range(1, 51):
        await until(ready, "an ingest" + (" inside a write" if inside_a_write else ""), [daemon])
        frozen = await stop(daemon, owner, link, db)
        frozen.attempts = attempt
        frozen.transactions = await write_transactions(db, daemon.process.pid, server_port)
        partial = await partly_stored(db, owner, jobs)
        if bool(frozen.transactions) == inside_a_write and partial:
            return frozen
        notes.append(f"{len(partial)} mid-ingest, in writes: {frozen.transactions}")
        daemon.signal(signal.SIGCONT)
    raise AssertionError("no stop landed where it was meant to:\n" + "\n".join(notes))


async def ingesting(
    db: asyncpg.Connection, daemon: Daemon, owner: str, jobs: dict[str, Job]
) -> bool:
    return bool(events(daemon, name="results_stored")) and bool(
        await partly_stored(db, owner, jobs)
    )


async def _state_is(daemon: Daemon, state: str) -> bool:
    return process_state(daemon) == state


async def snapshot(db: asyncpg.Connection, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What a job's row and records say, for jobs that must not change any more."""
    rows = await db.fetch(
        """
        SELECT j.batch_job_arn, j.status, j.updated_at, j.results_fetched_at,
               j.cleanup_completed_at, j.total_records, j.bytes_freed,
               j.results_fetch_attempts, j.cleanup_attempts, j.last_error,
               count(r.record_id) AS records, max(r.stored_at) AS last_stored
          FROM bedrock_batch_jobs j LEFT JOIN batch_records r
            ON r.batch_job_arn = j.batch_job_arn
         WHERE j.batch_job_arn = ANY($1)
         GROUP BY j.batch_job_arn
        """,
        list(arns),
    )
    return {row["batch_job_arn"]: dict(row) for row in rows}


# -- the checks at the end ------------------------------------------------------------------------


async def record_violations(db: asyncpg.Connection, jobs: Sequence[Job]) -> list[str]:
    """Every job COMPLETED and cleaned with its totals; every record the emulator wrote stored
    exactly once, from its own line, with its own output; nothing else stored."""
    violations = []
    rows = await db.fetch(
        "SELECT batch_job_arn, status, cleanup_completed_at, total_records, last_error "
        "FROM bedrock_batch_jobs"
    )
    found = {row["batch_job_arn"]: row for row in rows}
    stored: dict[str, list[asyncpg.Record]] = {}
    for row in await db.fetch(
        "SELECT batch_job_arn, record_id, outcome, model_output, source_file, line_number "
        "FROM batch_records"
    ):
        stored.setdefault(row["batch_job_arn"], []).append(row)
    if set(found) != {job.arn for job in jobs}:
        violations.append(f"jobs in the database: {len(found)}, tracked: {len(jobs)}")
    for job in jobs:
        row = found.get(job.arn)
        if row is None:
            continue
        if (row["status"], row["total_records"]) != ("COMPLETED", len(job.outputs)):
            violations.append(
                f"{job.arn}: {row['status']} with {row['total_records']} records "
                f"({row['last_error']})"
            )
        if row["cleanup_completed_at"] is None:
            violations.append(f"{job.arn}: never cleaned ({row['last_error']})")
        records = stored.get(job.arn, [])
        places = Counter((r["source_file"], r["line_number"]) for r in records)
        violations += [f"{job.arn}: {p} stored {n} times" for p, n in places.items() if n > 1]
        got = {
            r["record_id"]: (r["source_file"], r["line_number"], json.loads(r["model_output"]))
            for r in records
            if r["outcome"] == "ok" and r["model_output"] is not None
        }
        if len(records) != len(job.outputs) or got != job.outputs:
            lost = sorted(set(job.outputs) - set(got))[:3]
            extra = sorted(set(got) - set(job.outputs))[:3]
            violations.append(
                f"{job.arn}: {len(records)} records stored for {len(job.outputs)} written; "
                f"lost {lost}, not written {extra}"
            )
    return violations


async def bucket_violations(s3: Any, jobs: Sequence[Job], links: Sequence[SlowS3]) -> list[str]:
    """Every owned object gone, deleted by exactly one DeleteObjects request; nothing else
    deleted; the bystanders still there."""
    remaining: set[str] = set()
    async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        remaining.update(item["Key"] for item in page.get("Contents", []))
    owned = {key for job in jobs for key in job.objects}
    deleted: dict[str, list[str]] = {}
    for link in links:
        for _, keys in link.deletions:
            for key in keys:
                deleted.setdefault(key, []).append(link.name)
    violations = [f"left behind: {key}" for key in sorted(owned & remaining)]
    violations += [f"bystander deleted: {key}" for key in sorted(set(BYSTANDERS) - remaining)]
    violations += [
        f"deleted {len(deleted[key])} times (by {deleted[key]}): {key}"
        for key in sorted(owned)
        if len(deleted.get(key, ())) > 1
    ]
    violations += [
        f"gone without a DeleteObjects request: {key}"
        for key in sorted(owned - remaining)
        if key not in deleted
    ]
    violations += [f"deleted, not owned: {key}" for key in sorted(set(deleted) - owned)]
    return violations


def woken_violations(
    frozen: Frozen,
    jobs: dict[str, Job],
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    claimed: dict[str, str | None],
) -> list[str]:
    """What a replica that woke after its leases were taken over did for the jobs it had held:
    by its log, no results stored for a job it was fetching and no cleanup completed; by the
    database, nothing of theirs changed and none leased to it again; by its S3 link, none of
    their objects deleted."""
    violations = []
    for entry in events(frozen.daemon, frozen.log_offset):
        arn = entry.get("job_arn")
        if arn in frozen.fetching and entry.get("event") == "results_stored":
            violations.append(f"results stored after waking: {entry}")
        if arn in frozen.held and entry.get("event") == "cleanup_completed":
            violations.append(f"cleanup completed after waking: {entry}")
    for arn in frozen.held:
        changed = {k: (v, after[arn][k]) for k, v in before[arn].items() if after[arn][k] != v}
        if changed:
            violations.append(f"{arn} changed after the replica woke: {changed}")
        if claimed[arn] == frozen.owner:
            violations.append(f"{arn} leased to the replica that lost it, again")
    assert frozen.woke_at is not None
    owned = {key: arn for arn in frozen.held for key in jobs[arn].objects}
    for at, keys in frozen.link.deletions:
        late = sorted(key for key in keys if key in owned)
        if at >= frozen.woke_at and late:
            violations.append(
                f"deleted {at - frozen.woke_at:.2f} s after waking, by the replica that had "
                f"lost {sorted({owned[k] for k in late})}: {late}"
            )
    return violations


async def wake_and_settle(
    db: asyncpg.Connection, frozen: Frozen, jobs: dict[str, Job], survivors: Sequence[Daemon]
) -> list[str]:
    """Once the survivors have taken over and finished every job the frozen replica held: wakes
    it, waits for it to give up each job it was fetching (lease_lost) and for every job to
    settle, and stops the replicas with SIGTERM. Returns what the woken one did wrong."""
    await until(
        taken_over(db, list(frozen.held), frozen.owner),
        "the frozen replica's jobs taken over and finished",
        survivors,
        unsettled(db),
    )
    assert process_state(frozen.daemon) == "T"
    leases_end = max(row["claimed_until"] for row in frozen.held.values())
    finished_at: datetime = await db.fetchval("SELECT now()")
    assert finished_at > leases_end  # it stayed stopped past its leases
    before = await snapshot(db, list(frozen.held))
    frozen.link.release()
    frozen.woke_at = time.monotonic()
    frozen.daemon.signal(signal.SIGCONT)

    async def gave_up() -> bool:
        lost = events(frozen.daemon, frozen.log_offset, "lease_lost")
        return frozen.fetching <= {e.get("job_arn") for e in lost}

    alive = [frozen.daemon, *survivors]
    await until(gave_up, "lease_lost for every job it was fetching", alive)
    await until(all_settled(db, len(jobs)), "every job settled", alive, unsettled(db))
    # Whom the jobs are leased to is read before the replicas stop: they give up their leases
    # as they exit.
    rows = await db.fetch(
        "SELECT batch_job_arn, claimed_by FROM bedrock_batch_jobs WHERE batch_job_arn = ANY($1)",
        list(frozen.held),
    )
    for daemon in alive:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, daemon.tail()
    after = await snapshot(db, list(frozen.held))
    claimed = {row["batch_job_arn"]: row["claimed_by"] for row in rows}
    return woken_violations(frozen, jobs, before, after, claimed)


# -- the tests ------------------------------------------------------------------------------------
