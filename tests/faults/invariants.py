"""What the campaign checks: a lister that watches every deletion as it happens, and the
store and the bucket compared with the independent copy once the daemon has settled."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.shapes import CampaignJob, stored_matches
from tests.processes import query

SETTLED = ("COMPLETED", "PARTIALLY_COMPLETED", "FAILED")


def results_fetched(database: Path, arn: str) -> bool:
    try:
        rows = query(
            database,
            "SELECT results_fetched_at FROM bedrock_batch_jobs WHERE batch_job_arn = ?",
            arn,
        )
    except sqlite3.OperationalError:
        return False
    return bool(rows and rows[0][0] is not None)


def stored_record_count(database: Path) -> int:
    try:
        return int(query(database, "SELECT count(*) FROM batch_records")[0][0])
    except sqlite3.OperationalError:  # no database or no schema yet
        return 0


@dataclass
class DeletionWatch:
    """Lists the bucket over and over; every key that disappears must belong to a job whose
    results were committed before it went (the commit is visible by the time the key is gone)."""

    s3: Any
    bucket: str
    database: Path
    jobs: list[CampaignJob]
    violations: list[str] = field(default_factory=list)
    first_deletion: asyncio.Event = field(default_factory=asyncio.Event)
    deleted: set[str] = field(default_factory=set)

    async def run(self) -> None:
        known = await self._keys()
        while True:
            current = await self._keys()
            for key in sorted(known - current):
                self._judge(key)
            known = current
            await asyncio.sleep(0.02)

    def _judge(self, key: str) -> None:
        self.deleted.add(key)
        self.first_deletion.set()
        owner = next((job for job in self.jobs if job.owns(key)), None)
        if owner is None:
            self.violations.append(f"deleted outside every owned folder: {key}")
        elif not owner.cleaned:
            self.violations.append(f"deleted from a {owner.final_status} job's folder: {key}")
        elif not results_fetched(self.database, owner.arn):
            self.violations.append(f"deleted before {owner.shape}'s results were committed: {key}")

    async def _keys(self) -> set[str]:
        keys: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket):
            keys.update(item["Key"] for item in page.get("Contents", []))
        return keys


def settled(database: Path, jobs: list[CampaignJob]) -> bool:
    """Every job in its final state, cleaned where it is to be cleaned."""
    try:
        rows = query(
            database, "SELECT batch_job_arn, status, cleanup_completed_at FROM bedrock_batch_jobs"
        )
    except sqlite3.OperationalError:
        return False
    found = {arn: (status, cleaned) for arn, status, cleaned in rows}
    for job in jobs:
        status, cleaned = found.get(job.arn, (None, None))
        if status != job.final_status or (job.cleaned and cleaned is None):
            return False
    return True


def check_jobs(database: Path, jobs: list[CampaignJob]) -> list[str]:
    """Final states, and every expected record stored exactly once with equal contents."""
    violations = []
    for job in jobs:
        status, cleaned, error = query(
            database,
            "SELECT status, cleanup_completed_at, last_error FROM bedrock_batch_jobs "
            "WHERE batch_job_arn = ?",
            job.arn,
        )[0]
        if status != job.final_status:
            violations.append(f"{job.shape}: {status}, not {job.final_status} ({error})")
        if job.cleaned and cleaned is None:
            violations.append(f"{job.shape}: never cleaned ({error})")
        violations.extend(f"{job.shape}: {v}" for v in _check_records(database, job))
    return violations


def _check_records(database: Path, job: CampaignJob) -> list[str]:
    columns = (
        "record_id, outcome, error_code, error_message, model_output, model_input, raw_text, "
        "source_file, line_number"
    )
    cursor_rows = query(
        database, f"SELECT {columns} FROM batch_records WHERE batch_job_arn = ?", job.arn
    )
    names = [c.strip() for c in columns.split(",")]
    rows = [dict(zip(names, row, strict=True)) for row in cursor_rows]
    places = Counter((row["source_file"], row["line_number"]) for row in rows)
    violations = [f"{place} stored {n} times" for place, n in places.items() if n > 1]
    violations += [f"{place} lost" for place in job.expected if place not in places]
    violations += [
        f"{place} never written by Bedrock" for place in places if place not in job.expected
    ]
    for row in rows:
        expected = job.expected.get((row["source_file"], row["line_number"]))
        if expected is not None and not stored_matches(expected, row):
            violations.append(f"{row['record_id']} stored as {row}, expected {expected}")
    return violations


def check_bucket(
    before: dict[str, str], after: dict[str, str], jobs: list[CampaignJob]
) -> list[str]:
    """Objects of cleaned jobs gone; everything else as it was (same ETag)."""
    violations = []
    for key, etag in before.items():
        owner = next((job for job in jobs if job.owns(key)), None)
        if owner is not None and owner.cleaned:
            if key in after:
                violations.append(f"left behind by {owner.shape}'s cleanup: {key}")
        elif after.get(key) != etag:
            violations.append(f"changed or deleted, owned by no cleaned job: {key}")
    return violations
