"""A pass's own statements come a few a batch of jobs, not a few a job: the claim, the checks,
the reads of the jobs' state and the leases given up cost the same for many jobs as for a few.
What each job still costs is its own data: the fenced writes of its records, the counts the
manifest is checked against, and its settle (several settled together when they finish
together)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event

from batch_poller.app import build_supervisor
from batch_poller.domain import JobStatus
from batch_poller.runtime import Runtime
from tests.daemon_fixtures import BACKENDS

pytestmark = BACKENDS

_IN_LIST = re.compile(r"\((?:\?|\$\d+|%\(\w+\)s)(?:, (?:\?|\$\d+|%\(\w+\)s))*\)")
# A job's own statements: its records' fence (one a batch of records), the counts the manifest
# is checked against, and (at most) its settle with its event (and NOTIFY, on PostgreSQL).
PER_JOB = {"records fence", "record counts", "settle", "events", "notify"}


def kind(sql: str) -> str:
    flat = " ".join(sql.split())
    jobs_update = flat.startswith("UPDATE bedrock_batch_jobs SET")
    if flat.startswith("WITH picked"):
        return "claim"
    if jobs_update and flat.startswith("UPDATE bedrock_batch_jobs SET claimed_by="):
        return "release"
    if jobs_update and "results_fetched_at=" in flat:
        return "settle"
    if jobs_update and "last_checked_at=" in flat:
        return "check"
    if flat.startswith("UPDATE bedrock_batch_jobs SET updated_at=") and "claimed_until=" in flat:
        return "records fence"
    if flat.startswith("SELECT batch_records.outcome, batch_records.error_code, count(*)"):
        return "record counts"
    if flat.startswith("INSERT INTO events"):
        return "events"
    if flat.startswith("SELECT pg_notify("):
        return "notify"
    return _IN_LIST.sub("(...)", flat)  # the rest by their SQL


async def one_pass(runtime: Runtime, control: Any, submit: Any, jobs: int) -> Counter[str]:
    """Statements, by kind, of the pass that finds `jobs` jobs finished since the last."""
    arns = [await submit(3) for _ in range(jobs)]
    for arn in arns:
        await control.finish(arn, "Completed")
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen[kind(sql)] += 1

    engine = runtime.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        report = await build_supervisor(runtime).run_pass()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert report.steps["fetched"] == jobs
    for arn in arns:
        job = await runtime.store.get_job(arn)
        assert job is not None and job.status is JobStatus.COMPLETED and job.claimed_by is None
    return seen


async def test_the_pass_s_own_statements_do_not_grow_with_its_jobs(
    make_settings: Any, runtime: Runtime, control: Any, submit: Any
) -> None:
    # One batch takes every job: the slots outnumber them.
    runtime.settings = make_settings(poller={"max_concurrent_jobs": 32}, cleanup={"enabled": False})
    few = await one_pass(runtime, control, submit, 2)
    many = await one_pass(runtime, control, submit, 12)

    grown = {k: many[k] - few[k] for k in many.keys() | few.keys() if many[k] != few[k]}
    assert set(grown) - PER_JOB - {"BEGIN"} == set(), grown
    assert many["claim"] == 2  # the batch, and the one that finds nothing more
    assert many["check"] == 1
    assert many["release"] == 1
    # A job's own: its fence (three records are one batch), its counts; its settle at most.
    assert grown["records fence"] == grown["record counts"] == 10
    assert 1 <= many["settle"] <= 12 and many["events"] == many["settle"]
    assert many["notify"] in (0, many["settle"])


@pytest.mark.parametrize("slots", [2, 4])
async def test_with_few_slots_the_pass_claims_and_releases_a_batch_at_a_time(
    slots: int, make_settings: Any, runtime: Runtime, control: Any, submit: Any
) -> None:
    runtime.settings = make_settings(
        poller={"max_concurrent_jobs": slots}, cleanup={"enabled": False}
    )
    seen = await one_pass(runtime, control, submit, 12)

    # A claim when half the slots are free: at most one a half of the slots' worth of jobs,
    # and one more that finds nothing; each gives up the leases done with before it.
    half = max(1, slots // 2)
    assert seen["claim"] <= 12 // half + 1
    assert seen["release"] <= seen["claim"]
    assert seen["check"] <= seen["claim"]
