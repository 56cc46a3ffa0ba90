"""domain.py: statuses and the pure decisions about a job."""

from __future__ import annotations

import pytest

from batch_poller.domain import (
    BedrockStatus,
    JobStatus,
    final_status,
    has_results,
    internal_status,
    job_id_from_arn,
    retry_delay,
)

B = BedrockStatus
# status -> (internal status, has results, terminal)
TABLE = {
    B.SUBMITTED: (JobStatus.IN_PROGRESS, False, False),
    B.VALIDATING: (JobStatus.IN_PROGRESS, False, False),
    B.SCHEDULED: (JobStatus.IN_PROGRESS, False, False),
    B.IN_PROGRESS: (JobStatus.IN_PROGRESS, False, False),
    B.STOPPING: (JobStatus.IN_PROGRESS, False, False),
    B.COMPLETED: (JobStatus.IN_PROGRESS, True, True),
    B.PARTIALLY_COMPLETED: (JobStatus.IN_PROGRESS, True, True),
    B.FAILED: (JobStatus.FAILED, False, True),
    B.STOPPED: (JobStatus.FAILED, False, True),
    B.EXPIRED: (JobStatus.FAILED, False, True),
}


def test_table_covers_all_ten_statuses() -> None:
    assert set(TABLE) == set(BedrockStatus)
    assert len(BedrockStatus) == 10


@pytest.mark.parametrize("status", list(TABLE))
def test_status_decisions(status: BedrockStatus) -> None:
    internal, results, terminal = TABLE[status]
    assert internal_status(status) is internal
    assert has_results(status) is results
    assert status.is_terminal is terminal


@pytest.mark.parametrize("value", ["Submitted", "InProgress", "PartiallyCompleted", "Expired"])
def test_statuses_parse_from_bedrock_strings(value: str) -> None:
    assert BedrockStatus(value).value == value


def test_final_status() -> None:
    assert final_status(B.PARTIALLY_COMPLETED) is JobStatus.PARTIALLY_COMPLETED
    assert final_status(B.COMPLETED) is JobStatus.COMPLETED


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456",
        "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:model-invocation-job/abc123def456",
        "arn:aws-cn:bedrock:cn-north-1:123456789012:model-invocation-job/abc123def456",
    ],
)
def test_job_id_from_arn(arn: str) -> None:
    assert job_id_from_arn(arn) == "abc123def456"


@pytest.mark.parametrize(
    "arn",
    [
        "",
        "abc123def456",
        "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/",
        "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def4567",
        "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/ABC123DEF456",
        "arn:aws:bedrock:us-east-1:12345:model-invocation-job/abc123def456",
        "arn:aws:s3:us-east-1:123456789012:model-invocation-job/abc123def456",
        "arn:aws:bedrock:us-east-1:123456789012:custom-model/abc123def456",
        " arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456",
    ],
)
def test_job_id_from_malformed_arn(arn: str) -> None:
    with pytest.raises(ValueError, match="not a Bedrock batch job ARN"):
        job_id_from_arn(arn)


def test_job_id_from_arn_with_trailing_newline() -> None:
    with pytest.raises(ValueError):
        job_id_from_arn(
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456\n"
        )


def test_retry_delay_doubles() -> None:
    assert [retry_delay(n, 2.0) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert retry_delay(1, 0.0) == 0.0
