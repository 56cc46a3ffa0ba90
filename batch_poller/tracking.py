"""Starting to track jobs: read each once from Bedrock and store it. The CLI's `track`, the
admin API and users' code all come through here."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from batch_poller.aws.bedrock import BedrockJob
from batch_poller.aws.errors import AwsError
from batch_poller.cleanup import CleanupRefused, check_owned_input, checked_prefix
from batch_poller.domain import (
    JOB_ARN_PATTERN,
    GroupStatus,
    JobStatus,
    check_group_name,
    internal_status,
)
from batch_poller.rows import NewJob
from batch_poller.runtime import Runtime
from batch_poller.store import GroupError

log = structlog.get_logger("batch_poller")


class TrackError(Exception):
    """A job that cannot be tracked; the message says which and why.

    kind: "invalid" (the request is wrong), "unknown" (Bedrock has no such job),
    "unavailable" (Bedrock could not be asked) or "conflict" (the group cannot take it).
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Tracked:
    arn: str
    new: bool
    status: JobStatus
    bedrock_status: str


async def track_jobs(
    rt: Runtime,
    arns: list[str],
    input_prefix: str | None = None,
    *,
    group: str | None = None,
    seal: bool = False,
) -> list[Tracked]:
    """Tracks every job, or none: all ARNs are checked before the first is stored. `group`
    puts them in that group (made if new; refused when sealed), `seal` then seals it."""
    if not arns:
        raise TrackError("no job ARN given")
    if seal and group is None:
        raise TrackError("sealing needs the group the jobs are put in: name the group")
    if group is not None:
        await _check_group_takes(rt, group, arns)
    if input_prefix is not None and len(arns) != 1:
        raise TrackError("an input prefix names the input folder of one job: give a single ARN")
    for arn in arns:
        if not JOB_ARN_PATTERN.match(arn):
            raise TrackError(
                f"not a Bedrock batch job ARN: {arn!r} "
                "(expected arn:aws:bedrock:REGION:ACCOUNT:model-invocation-job/JOB_ID)"
            )
    if input_prefix is not None:
        try:
            checked_prefix(input_prefix, rt.settings.cleanup.managed_prefixes)
        except CleanupRefused as refused:
            raise TrackError(f"input prefix refused: {refused}") from None
    remote_jobs = []
    for arn in arns:
        try:
            remote_jobs.append(await rt.bedrock.get_job(arn))
        except AwsError as error:
            if error.not_found:
                raise TrackError(f"unknown job: Bedrock has no job {arn}", "unknown") from None
            raise TrackError(
                f"cannot read job {arn} from Bedrock: {error}", "unavailable"
            ) from None
    if input_prefix is not None:
        _check_input_within(remote_jobs[0], input_prefix)
        stored = await rt.store.get_job(remote_jobs[0].arn)
        if stored is not None and stored.s3_folder and stored.s3_folder != input_prefix:
            # Silently keeping the first folder would leave the one named now uncleaned.
            raise TrackError(
                f"{stored.batch_job_arn} is already tracked with the input folder "
                f"{stored.s3_folder}: a job owns one input folder, named when first tracked"
            )
    results = []
    for remote in remote_jobs:
        status = internal_status(remote.status)
        new = await rt.store.track_job(
            NewJob(
                arn=remote.arn,
                job_id=remote.job_id,
                job_name=remote.name,
                model_id=remote.model_id,
                bedrock_status=remote.status,
                status=status,
                message=remote.message,
                input_s3_uri=remote.input_uri,
                output_s3_prefix=remote.output_folder,
                s3_folder=input_prefix,
                submitted_at=remote.submitted_at,
                completed_at=remote.ended_at,
                progress=remote.progress,
                checked_at=rt.clock.now(),
            ),
            rt.clock.now(),
        )
        if not new:
            await _requeue_if_wrongly_failed(rt, remote)
        elif status is JobStatus.FAILED:
            # Logged like a failure the daemon sees happen: this one happened before it looked.
            log.warning(
                "job_failed",
                job_arn=remote.arn,
                bedrock_status=remote.status.value,
                message=remote.message,
                detail="it had failed already when it was tracked",
            )
        results.append(Tracked(remote.arn, new, status, remote.status.value))
    if group is not None:
        try:
            await rt.store.group_jobs([t.arn for t in results], group, rt.clock.now(), seal=seal)
        except GroupError as error:  # changed since the check above
            raise TrackError(str(error), "conflict") from None
    return results


async def _check_group_takes(rt: Runtime, group: str, arns: list[str]) -> None:
    """Refuses, before anything is stored, a group that cannot take these jobs."""
    try:
        check_group_name(group)
    except ValueError as error:
        raise TrackError(str(error)) from None
    found = await rt.store.get_group(group)
    newcomers = []
    for arn in arns:
        stored = await rt.store.get_job(arn)
        if stored is not None and stored.group_name not in (None, group):
            raise TrackError(
                f"{arn} is already in group {stored.group_name!r}: a job belongs to one group",
                "conflict",
            )
        if stored is None or stored.group_name is None:
            newcomers.append(arn)
    # Tracking again jobs that are in the group already is harmless, sealed or not.
    if found is not None and found.status is not GroupStatus.OPEN and newcomers:
        state = "sealed" if found.status is GroupStatus.SEALED else "compiled"
        raise TrackError(f"group {group!r} is {state}: it takes no more jobs", "conflict")


def _check_input_within(remote: BedrockJob, input_prefix: str) -> None:
    """The folder the daemon may delete must be the job's own, not merely hold its input."""
    try:
        check_owned_input(input_prefix, remote.input_uri)
    except CleanupRefused as refused:
        raise TrackError(f"input prefix refused: {refused}") from None


async def _requeue_if_wrongly_failed(rt: Runtime, remote: BedrockJob) -> None:
    """Tracking again a job the daemon gave up on (say, while access was denied) puts it back
    in the queue, when Bedrock does not report it failed."""
    stored = await rt.store.get_job(remote.arn)
    failed_at_bedrock = internal_status(remote.status) is JobStatus.FAILED
    if stored is not None and stored.status is JobStatus.FAILED and not failed_at_bedrock:
        await rt.store.requeue_failed(
            remote.arn,
            bedrock_status=remote.status,
            status=internal_status(remote.status),
            message=remote.message,
            now=rt.clock.now(),
        )
