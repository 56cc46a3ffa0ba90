"""Bedrock's batch control plane, as the daemon needs it: create a job, read one, list them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batch_poller.aws.errors import RetryPolicy
from batch_poller.domain import BedrockStatus, job_id_from_arn
from batch_poller.rows import NO_PROGRESS, Progress

# The roleArn Bedrock's model takes.
ROLE_PATTERN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")
# The s3Uri Bedrock's model takes for a job's input and output: a bucket name and a key of
# letters, digits and -!_*'(). between single slashes.
S3_URI_PATTERN = re.compile(
    r"^s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?$"
)


@dataclass(frozen=True)
class BedrockJob:
    arn: str
    job_id: str
    name: str | None
    model_id: str | None
    status: BedrockStatus
    message: str | None
    submitted_at: datetime | None
    ended_at: datetime | None
    input_uri: str | None
    output_uri: str | None
    progress: Progress = NO_PROGRESS
    role_arn: str | None = None

    @property
    def output_folder(self) -> str | None:
        """Where Bedrock writes this job's results: `{output uri}/{job id}/`."""
        if not self.output_uri:
            return None
        return f"{self.output_uri.rstrip('/')}/{self.job_id}/"

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> BedrockJob:
        arn = data["jobArn"]
        input_config = data.get("inputDataConfig", {}).get("s3InputDataConfig", {})
        output_config = data.get("outputDataConfig", {}).get("s3OutputDataConfig", {})
        return cls(
            arn=arn,
            job_id=job_id_from_arn(arn),
            name=data.get("jobName"),
            model_id=data.get("modelId"),
            status=BedrockStatus(data["status"]),
            message=data.get("message") or None,
            submitted_at=data.get("submitTime"),
            ended_at=data.get("endTime"),
            input_uri=input_config.get("s3Uri"),
            output_uri=output_config.get("s3Uri"),
            progress=Progress(
                processed=_count(data.get("processedRecordCount")),
                total=_count(data.get("totalRecordCount")),
            ),
            role_arn=data.get("roleArn"),
        )


def _count(value: Any) -> int | None:
    # A count the daemon cannot use (missing, negative, not a number) is an unknown count.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


@dataclass(frozen=True)
class JobRequest:
    """What CreateModelInvocationJob is given."""

    name: str
    role_arn: str
    model_id: str
    input_uri: str
    output_uri: str
    client_token: str
    timeout_hours: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


class Bedrock:
    def __init__(self, client: Any, retry: RetryPolicy) -> None:
        self._client = client
        self._retry = retry

    async def get_job(self, identifier: str) -> BedrockJob:
        data = await self._retry.run(
            "GetModelInvocationJob",
            lambda: self._client.get_model_invocation_job(jobIdentifier=identifier),
        )
        return BedrockJob.from_api(data)

    async def create_job(self, request: JobRequest) -> str:
        """Creates a batch job; returns its ARN. The same client token with the same request
        returns the job it made the first time, however often it is sent."""
        params: dict[str, Any] = {
            "jobName": request.name,
            "roleArn": request.role_arn,
            "modelId": request.model_id,
            "clientRequestToken": request.client_token,
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": request.input_uri}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": request.output_uri}},
        }
        if request.timeout_hours is not None:
            params["timeoutDurationInHours"] = request.timeout_hours
        if request.tags:
            params["tags"] = [{"key": k, "value": v} for k, v in request.tags.items()]
        data = await self._retry.run(
            "CreateModelInvocationJob",
            lambda: self._client.create_model_invocation_job(**params),
        )
        return str(data["jobArn"])

    async def job_tags(self, arn: str) -> dict[str, str]:
        data = await self._retry.run(
            "ListTagsForResource",
            lambda: self._client.list_tags_for_resource(resourceARN=arn),
        )
        return {tag["key"]: tag["value"] for tag in data.get("tags", [])}

    async def list_jobs(
        self,
        submitted_after: datetime | None = None,
        page_size: int = 1000,
        *,
        status: BedrockStatus | None = None,
        name_contains: str | None = None,
    ) -> AsyncIterator[BedrockJob]:
        """Every job submitted after the given time (in that status, with that in its name),
        oldest first, page by page."""
        params: dict[str, Any] = {"maxResults": page_size, "sortOrder": "Ascending"}
        if submitted_after is not None:
            params["submitTimeAfter"] = submitted_after
        if status is not None:
            params["statusEquals"] = status.value
        if name_contains is not None:
            params["nameContains"] = name_contains
        while True:
            page = await self._retry.run(
                "ListModelInvocationJobs",
                lambda: self._client.list_model_invocation_jobs(**params),
            )
            for summary in page.get("invocationJobSummaries", []):
                yield BedrockJob.from_api(summary)
            token = page.get("nextToken")
            if not token:
                return
            params["nextToken"] = token
