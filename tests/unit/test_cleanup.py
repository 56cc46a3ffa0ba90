"""cleanup.py: the guards before any deletion, and delete_prefix's batching."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import cast

import pytest

from batch_poller.aws.s3 import S3, S3Object, S3Uri
from batch_poller.cleanup import (
    CleanupRefused,
    CleanupResult,
    check_owned_input,
    checked_prefix,
    delete_prefix,
    owned_prefixes,
)
from batch_poller.domain import JobStatus
from batch_poller.store import JobRow

OTHER_ARN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"


@pytest.mark.parametrize("uri", ["s3://b/", "s3://b", "s3://b//", "s3://b///"])
def test_bucket_root_refused(uri: str) -> None:
    with pytest.raises(CleanupRefused, match="bucket root"):
        checked_prefix(uri, [])


@pytest.mark.parametrize("uri", ["b/job_1/", "https://b/job_1/", "s3:///job_1/"])
def test_not_an_s3_prefix_refused(uri: str) -> None:
    with pytest.raises(CleanupRefused):
        checked_prefix(uri, [])


def test_prefix_without_trailing_slash_refused() -> None:
    with pytest.raises(CleanupRefused, match="'/' boundary"):
        checked_prefix("s3://b/job_1", [])


@pytest.mark.parametrize("uri", ["s3://b/job-1/../", "s3://b/job-1/../job-10/", "s3://b/./job-1/"])
def test_dot_segments_are_refused(uri: str) -> None:
    with pytest.raises(CleanupRefused, match=r"'\.' or '\.\.' segment"):
        checked_prefix(uri, [])


def test_no_managed_prefixes_admits_any_folder() -> None:
    assert checked_prefix("s3://b/out/job_1/", []) == S3Uri("b", "out/job_1/")


def test_prefix_outside_managed_prefixes_refused() -> None:
    with pytest.raises(CleanupRefused, match="outside"):
        checked_prefix("s3://b/elsewhere/job_1/", ["s3://b/batch/"])


@pytest.mark.parametrize("managed", ["s3://b/batch", "s3://b/batch/"])
def test_prefix_inside_managed_prefix_accepted(managed: str) -> None:
    assert checked_prefix("s3://b/batch/job_1/", [managed]) == S3Uri("b", "batch/job_1/")


def test_managed_prefix_boundary_respected() -> None:
    with pytest.raises(CleanupRefused, match="outside"):
        checked_prefix("s3://b/batch2/x/", ["s3://b/batch"])


def test_managed_prefix_in_another_bucket_refused() -> None:
    with pytest.raises(CleanupRefused, match="outside"):
        checked_prefix("s3://other/batch/job_1/", ["s3://b/batch/"])


def test_any_of_several_managed_prefixes_admits() -> None:
    managed = ["s3://a/in/", "s3://b/batch/"]
    assert checked_prefix("s3://b/batch/x/", managed) == S3Uri("b", "batch/x/")


def test_prefix_holding_another_jobs_folder_refused() -> None:
    others = [(OTHER_ARN, "s3://b/out/job_2/")]
    with pytest.raises(CleanupRefused, match=OTHER_ARN):
        checked_prefix("s3://b/out/", [], others)


def test_same_folder_as_another_job_refused() -> None:
    with pytest.raises(CleanupRefused, match=OTHER_ARN):
        checked_prefix("s3://b/in/", [], [(OTHER_ARN, "s3://b/in/")])


def test_sibling_folder_is_not_contained() -> None:
    others = [(OTHER_ARN, "s3://b/out/job_10/"), (OTHER_ARN, "s3://c/out/job_1/x/")]
    assert checked_prefix("s3://b/out/job_1/", [], others) == S3Uri("b", "out/job_1/")


def test_prefix_inside_another_jobs_folder_refused() -> None:
    with pytest.raises(CleanupRefused, match=OTHER_ARN):
        checked_prefix("s3://b/in/job_b/", [], [(OTHER_ARN, "s3://b/in/")])


def job(output: str | None, folder: str | None) -> JobRow:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return JobRow(
        batch_job_arn=OTHER_ARN,
        job_id="abcdefabcdef",
        job_name=None,
        model_id=None,
        status=JobStatus.COMPLETED,
        bedrock_status=None,
        message=None,
        input_s3_uri=None,
        s3_folder=folder,
        output_s3_prefix=output,
        submitted_at=None,
        last_checked_at=None,
        completed_at=None,
        results_fetched_at=None,
        results_fetch_attempts=0,
        last_error=None,
        cleanup_completed_at=None,
        cleanup_attempts=0,
        total_records=None,
        success_records=None,
        error_records=None,
        input_tokens=None,
        output_tokens=None,
        cost=None,
        bytes_freed=None,
        created_at=now,
        updated_at=now,
    )


def test_owned_prefixes() -> None:
    assert owned_prefixes(job("s3://o/x/j/", "s3://i/in/")) == ["s3://o/x/j/", "s3://i/in/"]
    assert owned_prefixes(job("s3://o/x/j/", None)) == ["s3://o/x/j/"]
    assert owned_prefixes(job(None, "")) == []


def test_cleanup_result_addition() -> None:
    total = CleanupResult(1, 10, 1) + CleanupResult(2, 20, 3)
    assert total == CleanupResult(objects=3, bytes=30, delete_requests=4)
    assert CleanupResult() + CleanupResult() == CleanupResult(0, 0, 0)


class FakeS3:
    """A hand-written stand-in for S3. No real S3 lists keys outside the asked prefix, so the
    emulator cannot show delete_prefix's own check; this fake does exactly that."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.deleted: list[tuple[str, list[str]]] = []

    async def list_objects(self, prefix: S3Uri) -> AsyncIterator[S3Object]:
        for key in self.keys:
            yield S3Object(key, 3)

    async def delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        self.deleted.append((bucket, list(keys)))


async def test_delete_prefix_batches_and_skips_keys_outside() -> None:
    inside = [f"out/job_1/part-{i:05d}" for i in range(2500)]
    outside = "out/job_10/precious"
    fake = FakeS3([*inside[:1200], outside, *inside[1200:]])
    result = await delete_prefix(cast(S3, fake), S3Uri("b", "out/job_1/"))
    assert [len(keys) for _, keys in fake.deleted] == [1000, 1000, 500]
    assert {bucket for bucket, _ in fake.deleted} == {"b"}
    deleted = [key for _, keys in fake.deleted for key in keys]
    assert outside not in deleted
    assert deleted == inside
    assert result == CleanupResult(objects=2500, bytes=7500, delete_requests=3)


async def test_delete_prefix_of_an_empty_folder_sends_nothing() -> None:
    fake = FakeS3([])
    assert await delete_prefix(cast(S3, fake), S3Uri("b", "x/")) == CleanupResult()
    assert fake.deleted == []


@pytest.mark.parametrize(
    ("folder", "input_uri"),
    [
        ("s3://b/in/job3/", "s3://b/in/job3/records.jsonl"),
        ("s3://b/in/job3/sub/", "s3://b/in/job3/records.jsonl"),
        ("s3://b/in/job3/", "s3://b/in/job3/"),
        ("s3://b/in/job3/", "s3://b/in/job3"),
        ("s3://b/in/job3/part-1/", "s3://b/in/job3/"),
    ],
)
def test_the_jobs_own_input_folder_or_one_inside_it_is_owned(folder: str, input_uri: str) -> None:
    check_owned_input(folder, input_uri)


@pytest.mark.parametrize(
    ("folder", "input_uri", "accepted"),
    [
        ("s3://b/in/", "s3://b/in/job3/records.jsonl", "s3://b/in/job3/"),
        ("s3://b/in/job", "s3://b/in/job3/records.jsonl", "s3://b/in/job3/"),
        ("s3://b/in/job30/", "s3://b/in/job3/", "s3://b/in/job3/"),
        ("s3://c/in/job3/", "s3://b/in/job3/records.jsonl", "s3://b/in/job3/"),
        ("s3://b/", "s3://b/in/job3/x.jsonl", "s3://b/in/job3/"),
    ],
)
def test_a_folder_broader_than_the_jobs_own_is_refused_naming_the_right_one(
    folder: str, input_uri: str, accepted: str
) -> None:
    with pytest.raises(CleanupRefused, match=f"give {accepted} or a folder inside it"):
        check_owned_input(folder, input_uri)


@pytest.mark.parametrize("input_uri", [None, "", "s3://b/records.jsonl", "https://b/x.jsonl"])
def test_no_folder_is_owned_when_the_input_is_unknown_or_at_the_bucket_root(
    input_uri: str | None,
) -> None:
    with pytest.raises(CleanupRefused):
        check_owned_input("s3://b/in/", input_uri)
