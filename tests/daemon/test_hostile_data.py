"""Hostile data and database errors: odd bytes in record ids and lines, nested files, cut lines
of a partial job, and database errors whose text must never carry record contents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from batch_poller.domain import JobStatus, job_id_from_arn
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from batch_poller.tracking import track_jobs
from tests.daemon.test_lifecycle import stored_records
from tests.daemon_fixtures import JobFactory
from tests.helpers import BUCKET, create_job, make_records, put_input, read_object


def _folder(arn: str) -> str:
    return f"out/{job_id_from_arn(arn)}/"


async def _output_lines(s3: Any, arn: str) -> list[bytes]:
    return (await read_object(s3, _folder(arn) + "input.jsonl.out")).splitlines()


async def _put_output_lines(s3: Any, arn: str, lines: list[bytes]) -> None:
    body = b"\n".join(lines) + b"\n"
    await s3.put_object(Bucket=BUCKET, Key=_folder(arn) + "input.jsonl.out", Body=body)


async def test_a_database_error_names_the_operation_and_never_the_records(
    supervisor: Supervisor,
    runtime: Runtime,
    control: Any,
    s3: Any,
    submit: JobFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arn = await submit(5)
    await control.finish(arn, "Completed")
    outputs = [json.loads(line)["modelOutput"] for line in await _output_lines(s3, arn)]
    async with runtime.store.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON batch_records "
                "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
            )
        )

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    logged = capsys.readouterr()
    assert job is not None and job.status is JobStatus.RESULT_FETCH_FAILED
    assert job.last_error == "store records: IntegrityError: refused by a trigger"
    for shown in (job.last_error, logged.out + logged.err):
        assert "INSERT" not in shown and "j1-0000" not in shown
        assert all(json.dumps(output)[:40] not in shown for output in outputs)
    assert "store records: IntegrityError: refused by a trigger" in logged.out + logged.err


@pytest.mark.parametrize("finish", ["Completed", "PartiallyCompleted"])
async def test_a_record_id_with_a_nul_character_is_stored_once_and_the_job_completes(
    supervisor: Supervisor, runtime: Runtime, control: Any, bedrock: Any, s3: Any, finish: str
) -> None:
    records = make_records(4)
    records[1]["recordId"] = "nul\x00id"
    uri = await put_input(s3, "nul/input.jsonl", records)
    arn = await create_job(bedrock, uri)
    await track_jobs(runtime, [arn], f"s3://{BUCKET}/nul/")
    await control.finish(arn, finish)

    await supervisor.run_pass()

    job = await runtime.store.get_job(arn)
    stored = await stored_records(runtime, arn)
    assert job is not None and job.last_error is None
    assert job.status.value == finish.replace("PartiallyCompleted", "PARTIALLY_COMPLETED").upper()
    assert len(stored) == 4 and "nul\ufffdid" in stored
    assert job.cleanup_completed_at is not None
