"""The emulator's jobs: created, found, moved on by the clock or by hand, with the side effects
Bedrock has (validating the input, writing results, announcing every change)."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from batch_poller.aws.s3 import S3Uri
from batch_poller.domain import JOB_ARN_PATTERN, BedrockStatus
from batch_poller.emulator.clock import EmulatorClock
from batch_poller.emulator.events import send_event, state_change_event
from batch_poller.emulator.faults import FaultInjector
from batch_poller.emulator.lifecycle import STOPPABLE, EmulatedJob, RecordCounts, next_transition
from batch_poller.emulator.outputs import (
    InputProblem,
    find_input_files,
    validate_input,
    write_job_output,
)
from batch_poller.emulator.protocol import ApiError, CreateRequest, invalid
from batch_poller.emulator.settings import EmulatorSettings, Faults, JobOptions

S = BedrockStatus
log = structlog.get_logger("batch_poller.emulator")
JOB_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
TAG_PREFIX = "emulator:"


class JobRegistry:
    def __init__(
        self, clock: EmulatorClock, s3: Any, sqs: Any, *, account_id: str, region: str
    ) -> None:
        self.clock = clock
        self.settings = EmulatorSettings()
        self.calls: Counter[str] = Counter()
        self._s3 = s3
        self._sqs = sqs
        self._account_id = account_id
        self._region = region
        self._jobs: dict[str, EmulatedJob] = {}
        self._by_token: dict[str, tuple[CreateRequest, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._faults = FaultInjector(self.settings.seed)
        self._global_fault_calls = 0
        self._sequence = 0

    # -- configuration ---------------------------------------------------------------------

    def configure(self, settings: EmulatorSettings) -> None:
        if settings.seed != self.settings.seed:
            self._faults.reseed(settings.seed)
        if settings.faults != self.settings.faults:
            self._global_fault_calls = 0
        self.settings = settings

    def reset(self) -> None:
        self._jobs.clear()
        self._by_token.clear()
        self._locks.clear()
        self.calls.clear()
        self.settings = EmulatorSettings()
        self._faults.reseed(self.settings.seed)
        self._global_fault_calls = 0
        self._sequence = 0
        self.clock.reset()

    def global_fault(self, operation: str) -> ApiError | None:
        faults = self.settings.faults
        if faults.operations is not None and operation not in faults.operations:
            return None
        self._global_fault_calls += 1
        return self._faults.error_for(faults, self._global_fault_calls)

    def answer_delay(self, operation: str) -> float:
        """Seconds to hold the answer of a call that was carried out."""
        faults = self.settings.faults
        if faults.operations is not None and operation not in faults.operations:
            return 0.0
        return faults.answer_delay_ms / 1000

    def job_fault(self, job: EmulatedJob) -> ApiError | None:
        if job.faults is None:
            return None
        job.fault_calls += 1
        return self._faults.error_for(job.faults, job.fault_calls)

    def set_job_faults(self, job: EmulatedJob, faults: Faults | None) -> None:
        job.faults = faults
        job.fault_calls = 0

    # -- Bedrock operations ----------------------------------------------------------------

    async def create(self, request: CreateRequest) -> EmulatedJob:
        token = request.client_request_token
        if token is not None and token in self._by_token:
            earlier, job_id = self._by_token[token]
            if earlier != request:
                raise ApiError(
                    "ConflictException",
                    f"clientRequestToken {token!r} was already used for a different request",
                )
            return self._jobs[job_id]
        if any(j.job_name == request.job_name for j in self._jobs.values()):
            raise ApiError("ConflictException", f"a job named {request.job_name!r} already exists")
        options = self._options_from_tags(request.tags)
        if request.model_invocation_type is not None:
            # The request's own field, as Bedrock takes it; the tag stays for older clients.
            options = options.model_copy(update={"invocation_type": request.model_invocation_type})
        await self._check_s3(request)
        job_id = "".join(secrets.choice(JOB_ID_ALPHABET) for _ in range(12))
        # Bedrock's timestamps carry milliseconds; keeping no more makes filters exact.
        now = math.floor(self.clock.now() * 1000) / 1000
        self._sequence += 1
        job = EmulatedJob(
            sequence=self._sequence,
            job_id=job_id,
            job_arn=f"arn:aws:bedrock:{self._region}:{self._account_id}:model-invocation-job/{job_id}",
            job_name=request.job_name,
            model_id=request.model_id,
            role_arn=request.role_arn,
            input_uri=request.input_uri,
            output_uri=request.output_uri,
            timeout_hours=request.timeout_hours,
            submit_time=_datetime(now),
            last_modified_time=_datetime(now),
            client_request_token=token,
            tags=request.tags,
            options=options,
            status_since=now,
            history=[S.SUBMITTED],
            vpc_config=request.vpc_config,
        )
        self._jobs[job_id] = job
        self._locks[job_id] = asyncio.Lock()
        if token is not None:
            self._by_token[token] = (request, job_id)
        log.info("job_created", job_arn=job.job_arn, model_id=job.model_id, outcome=options.outcome)
        await self._announce(job)
        return job

    def find(self, identifier: str) -> EmulatedJob:
        match = JOB_ARN_PATTERN.match(identifier)
        if match is not None:
            job_id = match.group("job_id")
        elif len(identifier) == 12 and all(c in JOB_ID_ALPHABET for c in identifier):
            job_id = identifier
        else:
            raise invalid(f"jobIdentifier: {identifier!r} is neither a job ARN nor a job id")
        job = self._jobs.get(job_id)
        if job is None or (match is not None and job.job_arn != identifier):
            raise ApiError("ResourceNotFoundException", f"Job {identifier} was not found.")
        return job

    async def stop(self, job: EmulatedJob) -> None:
        async with self._locks[job.job_id]:
            await self._settle_locked(job)
            if job.status not in STOPPABLE:
                raise ApiError(
                    "ConflictException",
                    f"Job {job.job_arn} is {job.status.value}: it cannot be stopped.",
                )
            await self._move(job, S.STOPPING, self.clock.now())

    def all_jobs(self) -> Iterable[EmulatedJob]:
        return list(self._jobs.values())

    # -- moving jobs on --------------------------------------------------------------------

    async def settle(self, job: EmulatedJob) -> None:
        lock = self._locks.get(job.job_id)
        if lock is None:  # forgotten by a reset since it was looked up: nothing to move on
            return
        async with lock:
            await self._settle_locked(job)

    async def settle_all(self) -> None:
        await asyncio.gather(*(self.settle(job) for job in self.all_jobs()))

    async def advance(self, job: EmulatedJob) -> None:
        """Move the job to its next status now, whatever the clock says."""
        async with self._locks[job.job_id]:
            await self._settle_locked(job)
            if job.status.is_terminal:
                raise ApiError(
                    "ConflictException", f"Job {job.job_id} is already {job.status.value}"
                )
            job.advance_requested = True
            step = next_transition(job, self.settings.durations)
            assert step is not None
            await self._move(job, step[1], self.clock.now())

    async def finish(self, job: EmulatedJob, status: BedrockStatus, message: str | None) -> None:
        """Give the job a final status now, with the side effects that status has."""
        if not status.is_terminal:
            raise invalid(f"status: {status.value} is not a final status")
        async with self._locks[job.job_id]:
            await self._settle_locked(job)
            if job.status.is_terminal:
                raise ApiError(
                    "ConflictException", f"Job {job.job_id} is already {job.status.value}"
                )
            if message is not None:
                job.options = job.options.model_copy(update={"failure_message": message})
            await self._move(job, status, self.clock.now())

    async def _settle_locked(self, job: EmulatedJob) -> None:
        while (step := next_transition(job, self.settings.durations)) is not None:
            at, target = step
            if at > self.clock.now():
                break
            await self._move(job, target, at)
        if job.status is S.IN_PROGRESS and job.counts is not None:
            took = self.settings.durations.in_progress
            share = 1.0 if took <= 0 else (self.clock.now() - job.status_since) / took
            job.counts.progress(share, job.options.error_rate)

    async def _move(self, job: EmulatedJob, target: BedrockStatus, at: float) -> None:
        message = None
        try:
            if target is S.SCHEDULED:
                job.counts = RecordCounts(total=await validate_input(self._s3, job))
            elif target in (S.COMPLETED, S.PARTIALLY_COMPLETED):
                manifest = await write_job_output(
                    self._s3,
                    job,
                    self.settings.embedding_dimensions,
                    partial=target is S.PARTIALLY_COMPLETED,
                )
                job.counts = RecordCounts(
                    manifest.totalRecordCount,
                    manifest.processedRecordCount,
                    manifest.successRecordCount,
                    manifest.errorRecordCount,
                )
                log.info("job_output_written", job_arn=job.job_arn, **manifest.__dict__)
            elif target is S.FAILED:
                message = job.options.failure_message
            elif target is S.EXPIRED:
                message = (
                    f"The job expired: it was not started within {job.timeout_hours} hours "
                    "(timeoutDurationInHours)."
                )
        except InputProblem as problem:
            target, message = S.FAILED, str(problem)
        job.status = target
        job.message = message
        job.status_since = at
        job.advance_requested = False
        job.last_modified_time = _datetime(at)
        if target.is_terminal:
            job.end_time = _datetime(at)
        job.history.append(target)
        log.info("job_status_changed", job_arn=job.job_arn, status=target.value)
        await self._announce(job)

    async def _announce(self, job: EmulatedJob) -> None:
        queue = self.settings.events_queue_url
        if queue:
            await send_event(
                self._sqs, queue, state_change_event(job, self._account_id, self._region)
            )

    # -- helpers ---------------------------------------------------------------------------

    def _options_from_tags(self, tags: dict[str, str]) -> JobOptions:
        overrides = {
            key[len(TAG_PREFIX) :].replace("-", "_"): value
            for key, value in tags.items()
            if key.startswith(TAG_PREFIX)
        }
        try:
            return JobOptions.model_validate({**self.settings.defaults.model_dump(), **overrides})
        except ValidationError as error:
            first = error.errors()[0]
            name = TAG_PREFIX + str(first["loc"][0]).replace("_", "-") if first["loc"] else "tags"
            raise invalid(f"tags: {name}: {first['msg']}") from None

    async def _check_s3(self, request: CreateRequest) -> None:
        try:
            await find_input_files(self._s3, request.input_uri)
        except InputProblem:
            raise invalid(
                f"inputDataConfig.s3InputDataConfig.s3Uri: no .jsonl input at {request.input_uri}"
            ) from None
        except self._s3.exceptions.ClientError:
            raise invalid(
                f"inputDataConfig.s3InputDataConfig.s3Uri: cannot read {request.input_uri}"
            ) from None
        bucket = S3Uri.parse(request.output_uri).bucket
        try:
            await self._s3.head_bucket(Bucket=bucket)
        except self._s3.exceptions.ClientError:
            raise invalid(
                f"outputDataConfig.s3OutputDataConfig.s3Uri: bucket {bucket!r} is not accessible"
            ) from None


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
