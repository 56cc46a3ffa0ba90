"""A finished job's (or a group's) records that can be run again -> a new job in the same group.

Those are the records Bedrock never processed (NOT_PROCESSED, from a PartiallyCompleted job)
and the errors worth another try (throttling, server errors, timeouts; not a validation
error, which would fail again). Each keeps its record id, so that the group, compiled again
once the new job settles, counts each record by its latest version: the new job's records
replace the errors they ran again, and the old rows stay as history."""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import orjson

from batch_poller.aws.errors import AwsError
from batch_poller.domain import JobStatus, check_group_name
from batch_poller.records import NOT_PROCESSED
from batch_poller.rows import JobRow
from batch_poller.runtime import Runtime
from batch_poller.store import RetryRecord
from batch_poller.submission.lines import SubmitError
from batch_poller.submission.submit import SubmitRequest, SubmittedJob, submit

# Codes Bedrock and the models write for a record that may well succeed when run again.
RETRYABLE_CODES = frozenset(
    {
        "408",
        "429",
        "500",
        "502",
        "503",
        "504",
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelTimeoutException",
        "ModelNotReadyException",
    }
)
# Only a job whose records are all stored has records to run again.
FINISHED = (JobStatus.COMPLETED, JobStatus.PARTIALLY_COMPLETED)
# {output uri}/{job id}/ of a job `submit` made: {folder}{job name}/output/{job id}/
_SUBMITTED_OUTPUT = re.compile(r"^(s3://[^/]+/(?:.*/)?)[^/]+/output/[^/]+/$")


@dataclass(frozen=True)
class Resubmission:
    """What a resubmission would run again, and from which jobs."""

    jobs: list[JobRow]
    records: list[RetryRecord]
    codes: frozenset[str]

    def counts(self) -> Counter[str]:
        return Counter(record.error_code for record in self.records)


async def plan_resubmission(
    rt: Runtime, jobs: list[JobRow], errors: Collection[str] | None = None
) -> Resubmission:
    """The records of the jobs to run again: NOT_PROCESSED, and errors with these codes
    (default: RETRYABLE_CODES). SubmitError when none of the jobs has finished."""
    finished = [job for job in jobs if job.status in FINISHED]
    if not finished:
        states = {job.status for job in jobs}
        if states <= {JobStatus.FAILED}:
            raise SubmitError(
                "nothing to run again: a FAILED job's records were never stored; "
                "submit its input again"
            )
        shown = ", ".join(sorted(status.value for status in states)) or "none"
        raise SubmitError(
            f"no job here has finished with its records stored (theirs: {shown}): "
            "there is nothing to run again yet"
        )
    codes = frozenset({NOT_PROCESSED, *(RETRYABLE_CODES if errors is None else errors)})
    arns = [job.batch_job_arn for job in finished]
    # A record is judged by its latest version in the group: one a resubmission already ran
    # again (and got right) is not run a third time.
    scope = list(arns)
    for group in sorted({job.group_name for job in finished if job.group_name}):
        scope += [job.batch_job_arn for job in await rt.store.group_members(group)]
    records = await rt.store.records_to_retry(sorted(set(scope)), codes, of_jobs=arns)
    return Resubmission(finished, records, codes)


async def resubmit(
    rt: Runtime,
    plan: Resubmission,
    *,
    role_arn: str | None = None,
    folder: str | None = None,
) -> list[SubmittedJob]:
    """Submits the plan's records as a new job (or several) in the jobs' group."""
    if not plan.records:
        codes = ", ".join(sorted(plan.codes))
        raise SubmitError(f"nothing to run again: no record is left with a code among {codes}")
    if missing := sum(record.model_input is None for record in plan.records):
        raise SubmitError(
            f"{missing} of the {len(plan.records)} records have no stored input (stored while "
            "[results] store_error_input was off): they cannot be run again"
        )
    original = plan.jobs[0]
    models = sorted({job.model_id or "?" for job in plan.jobs})
    if len(models) > 1:
        raise SubmitError(
            f"the jobs ran several models ({', '.join(models)}): resubmit them job by job"
        )
    group = _group_of(plan.jobs)
    with tempfile.TemporaryDirectory(prefix="batch-poller-resubmit-") as scratch:
        source = Path(scratch) / "retry.jsonl"
        source.write_bytes(b"".join(map(_input_line, plan.records)))
        request = SubmitRequest(
            inputs=(source,),
            model_id=models[0],
            role_arn=role_arn or await _role_of(rt, original),
            folder=folder or _folder_of(original),
            name=f"{group if len(plan.jobs) > 1 else original.job_name or original.job_id}-retry",
            group=group,
            # With several jobs, the first names them: the mark of a resubmission.
            retries_of=original.batch_job_arn,
        )
        return await submit(rt, request)


def _input_line(record: RetryRecord) -> bytes:
    assert record.model_input is not None
    return (
        b'{"recordId":'
        + orjson.dumps(record.record_id)
        + b',"modelInput":'
        + record.model_input.encode()
        + b"}\n"
    )


def _group_of(jobs: list[JobRow]) -> str:
    """The jobs' group, or for one job outside any, the name of a group for it and its
    retries, made (sealed, with the job in it) when the retry is created."""
    groups = {job.group_name for job in jobs}
    if len(groups) == 1 and (name := groups.pop()) is not None:
        return name
    if len(jobs) != 1:
        raise SubmitError("the jobs are not all in one group: resubmit them job by job")
    job = jobs[0]
    name = f"{job.job_name or job.job_id}-with-retries"
    try:
        return check_group_name(name)
    except ValueError:
        return f"{job.job_id}-with-retries"


async def _role_of(rt: Runtime, job: JobRow) -> str:
    try:
        role = (await rt.bedrock.get_job(job.batch_job_arn)).role_arn
    except AwsError as error:
        raise SubmitError(f"cannot read {job.batch_job_arn}'s role from Bedrock: {error}") from None
    if not role:
        raise SubmitError(f"Bedrock does not say {job.batch_job_arn}'s role: give --role")
    return role


def _folder_of(job: JobRow) -> str:
    """Where `submit` put the original job, if it did: its retry goes beside it."""
    match = _SUBMITTED_OUTPUT.match(job.output_s3_prefix or "")
    if match is None:
        raise SubmitError(
            f"{job.batch_job_arn} was not made by `submit`: give --bucket, the folder its "
            "retry's input and output go in"
        )
    return match.group(1)
