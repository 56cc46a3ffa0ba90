"""Recorded submissions -> jobs at Bedrock, tracked. As many as each model's concurrent-job
quota has room for are created; the rest stay queued for a later launch (the daemon's passes
launch them as earlier jobs finish). A submission left "creating" by a process that died is
created again with the same client token: Bedrock answers with the job it already made, if it
made one, so it is found and tracked, never made twice."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from batch_poller.aws.bedrock import JobRequest
from batch_poller.aws.errors import AwsError
from batch_poller.domain import BedrockStatus
from batch_poller.rows import SubmissionRow
from batch_poller.runtime import Runtime
from batch_poller.store import GroupError
from batch_poller.tracking import TrackError, track_jobs

log = structlog.get_logger("batch_poller.submit")

# The statuses Bedrock counts in a model's quota of submitted and in-progress jobs.
ACTIVE = (
    BedrockStatus.SUBMITTED,
    BedrockStatus.VALIDATING,
    BedrockStatus.SCHEDULED,
    BedrockStatus.IN_PROGRESS,
)
QUOTA_EXCEEDED = "ServiceQuotaExceededException"


@dataclass
class LaunchReport:
    tracked: dict[str, str] = field(default_factory=dict)  # client token -> job ARN
    queued: list[str] = field(default_factory=list)  # client tokens waiting for room
    refused: dict[str, str] = field(default_factory=dict)  # client token -> why
    # Why none could be launched now, when Bedrock could not be asked.
    unavailable: str | None = None


async def launch_submissions(rt: Runtime, tokens: list[str] | None = None) -> LaunchReport:
    """Creates and tracks the pending submissions (those with these tokens, or all), oldest
    first, within each model's quota ([submit] max_concurrent_jobs_per_model)."""
    report = LaunchReport()
    room: dict[str, int] = {}
    for row in await rt.store.submissions(tokens, pending_only=True):
        if row.state == "queued":
            if row.model_id not in room:
                room[row.model_id] = await _room_for(rt, row.model_id)
            if room[row.model_id] <= 0:
                report.queued.append(row.client_token)
                continue
            room[row.model_id] -= 1
        await _launch(rt, row, report, room)
    if report.queued:
        # Each one's last_error says why: the model's quota full, or Bedrock not answering.
        log.info("submissions_queued", count=len(report.queued))
    return report


async def _room_for(rt: Runtime, model_id: str) -> int:
    """How many more jobs of the model Bedrock takes now: the quota less the jobs of the
    model submitted or in progress, whoever submitted them."""
    active = 0
    for status in ACTIVE:
        async for job in rt.bedrock.list_jobs(status=status):
            active += job.model_id == model_id
    return rt.settings.submit.max_concurrent_jobs_per_model - active


async def _launch(
    rt: Runtime, row: SubmissionRow, report: LaunchReport, room: dict[str, int]
) -> None:
    token = row.client_token
    # Recorded first: from here on the job may exist, and the token is how it is found.
    await rt.store.mark_submission(token, "creating", rt.clock.now())
    try:
        arn = await rt.bedrock.create_job(_request(row))
    except AwsError as error:
        if error.code == QUOTA_EXCEEDED:
            room[row.model_id] = 0  # the account's own count said no: none more this time
            await rt.store.mark_submission(token, "queued", rt.clock.now(), error=str(error))
            report.queued.append(token)
        elif error.transient:
            await rt.store.mark_submission(token, row.state, rt.clock.now(), error=str(error))
            report.queued.append(token)
        else:
            await rt.store.mark_submission(token, "refused", rt.clock.now(), error=str(error))
            report.refused[token] = str(error)
            log.warning("submission_refused", job_name=row.job_name, error=str(error))
        return
    try:
        await _track(rt, row, arn)
    except (TrackError, GroupError) as error:
        if not (isinstance(error, TrackError) and error.kind == "conflict"):
            # Kept "creating": the next launch asks for it again and tracks it then.
            await rt.store.mark_submission(
                token, "creating", rt.clock.now(), arn=arn, error=str(error)
            )
            report.refused[token] = f"{arn} was created but could not be tracked: {error}"
            return
        # Its group was sealed meanwhile: a job made is never left untracked.
        await track_jobs(rt, [arn], row.input_folder)
        log.warning(
            "submitted_outside_its_group", job_arn=arn, group=row.group_name, error=str(error)
        )
    await rt.store.mark_submission(token, "tracked", rt.clock.now(), arn=arn)
    report.tracked[token] = arn
    log.info("job_submitted", job_arn=arn, job_name=row.job_name)
    if row.seals_group and row.group_name is not None:
        await _seal_when_all_tracked(rt, row.group_name)


async def _seal_when_all_tracked(rt: Runtime, group: str) -> None:
    """Seals a submission's group once none of its jobs waits to be created: only then is
    the group whole, and compiled when they have all settled (their folders wait for it)."""
    waiting = [
        row for row in await rt.store.submissions(pending_only=True) if row.group_name == group
    ]
    if waiting:
        return
    try:
        sealed = await rt.store.seal_group(group, rt.clock.now())
    except GroupError as error:
        log.warning("group_not_sealed", group=group, error=str(error))
        return
    log.info("group_sealed", group=group, jobs=sealed.jobs, detail="its submission is whole")


async def _track(rt: Runtime, row: SubmissionRow, arn: str) -> None:
    if row.retries_of is None or row.group_name is None:
        await track_jobs(rt, [arn], row.input_folder, group=row.group_name)
        return
    # A resubmission joins its original's group even sealed or compiled: it reopens it. An
    # original outside any group gets one, sealed: it takes no other job.
    await track_jobs(rt, [arn], row.input_folder)
    now = rt.clock.now()
    if await rt.store.get_group(row.group_name) is None:
        await rt.store.group_jobs([row.retries_of], row.group_name, now, seal=True)
    await rt.store.join_as_retry(row.group_name, arn, row.retries_of, now)


def _request(row: SubmissionRow) -> JobRequest:
    return JobRequest(
        name=row.job_name,
        role_arn=row.role_arn,
        model_id=row.model_id,
        input_uri=row.input_uri,
        output_uri=row.output_uri,
        client_token=row.client_token,
        timeout_hours=row.timeout_hours,
        tags=row.tags,
    )
