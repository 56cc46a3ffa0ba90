"""store/submissions.py: jobs recorded before they are created, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from store_testlib import NOW

from batch_poller.rows import SubmissionRow
from batch_poller.store import JobStore


def row(number: int, **changes: object) -> SubmissionRow:
    values: dict[str, object] = {
        "client_token": f"abc-{number}",
        "job_name": f"name-{number}",
        "model_id": "amazon.nova-lite-v1:0",
        "role_arn": "arn:aws:iam::123456789012:role/R",
        "input_uri": f"s3://b/s/name-{number}/input/records.jsonl",
        "output_uri": f"s3://b/s/name-{number}/output/",
        "input_folder": f"s3://b/s/name-{number}/input/",
        "tags": {"team": "search", "nul": "a\x00b"},
        **changes,
    }
    return SubmissionRow(**values)  # type: ignore[arg-type]


async def test_submissions_are_recorded_once_and_read_back_in_order(store: JobStore) -> None:
    await store.record_submissions([row(1), row(2, timeout_hours=48)], NOW)
    # The same submission again: recorded already, left as it is.
    await store.record_submissions([row(1, job_name="renamed")], NOW + timedelta(seconds=1))

    rows = await store.submissions()

    assert [(r.client_token, r.job_name, r.state) for r in rows] == [
        ("abc-1", "name-1", "queued"),
        ("abc-2", "name-2", "queued"),
    ]
    assert rows[1].timeout_hours == 48
    assert rows[0].tags == {"team": "search", "nul": "a\x00b"}


async def test_a_submission_moves_from_queued_to_tracked(store: JobStore) -> None:
    await store.record_submissions([row(1), row(2)], NOW)
    arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"

    await store.mark_submission("abc-1", "creating", NOW)
    await store.mark_submission("abc-2", "queued", NOW, error="quota\x00 full")
    await store.mark_submission("abc-1", "tracked", NOW, arn=arn)

    pending = await store.submissions(pending_only=True)
    assert [(r.client_token, r.state, r.last_error) for r in pending] == [
        ("abc-2", "queued", "quota\ufffd full")
    ]
    (done,) = await store.submissions(["abc-1"])
    assert (done.state, done.arn, done.last_error) == ("tracked", arn, None)
