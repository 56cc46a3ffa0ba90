"""ListModelInvocationJobs: pages, filters and sort order, as botocore sends them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.helpers import create_job, make_records, put_input


@pytest.fixture
async def arns(bedrock: Any, s3: Any, control: Any, endpoints: Any) -> list[str]:
    await control.freeze_clock()
    uri = await put_input(s3, "in/a.jsonl", make_records(2))
    created = []
    for index in range(25):
        name = f"{'nightly' if index % 2 else 'adhoc'}-{index:02d}"
        created.append(await create_job(bedrock, uri, name=name))
        await control.advance_clock(0.01)
    return created


async def test_pages_of_max_results_cover_every_job_once(bedrock: Any, arns: list[str]) -> None:
    pages = []
    kwargs: dict[str, Any] = {"maxResults": 10}
    while True:
        page = await bedrock.list_model_invocation_jobs(**kwargs)
        pages.append([s["jobArn"] for s in page["invocationJobSummaries"]])
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [arn for page in pages for arn in page] == list(reversed(arns))


async def test_the_botocore_paginator_walks_ascending(bedrock: Any, arns: list[str]) -> None:
    paginator = bedrock.get_paginator("list_model_invocation_jobs")
    seen = []
    async for page in paginator.paginate(sortOrder="Ascending", PaginationConfig={"PageSize": 7}):
        seen.extend(s["jobArn"] for s in page["invocationJobSummaries"])

    assert seen == arns


async def test_status_and_name_filters(bedrock: Any, control: Any, arns: list[str]) -> None:
    await control.finish(arns[1], "Completed")
    await control.finish(arns[2], "Failed")

    completed = await bedrock.list_model_invocation_jobs(statusEquals="Completed")
    nightly = await bedrock.list_model_invocation_jobs(nameContains="nightly", maxResults=100)

    assert [s["jobArn"] for s in completed["invocationJobSummaries"]] == [arns[1]]
    assert len(nightly["invocationJobSummaries"]) == 12
    assert all("nightly" in s["jobName"] for s in nightly["invocationJobSummaries"])


async def test_submit_time_window(bedrock: Any, arns: list[str]) -> None:
    times = {}
    for arn in (arns[5], arns[10]):
        times[arn] = (await bedrock.get_model_invocation_job(jobIdentifier=arn))["submitTime"]

    window = await bedrock.list_model_invocation_jobs(
        submitTimeAfter=times[arns[5]] - timedelta(microseconds=500),
        submitTimeBefore=times[arns[10]] + timedelta(microseconds=500),
        sortOrder="Ascending",
    )

    assert [s["jobArn"] for s in window["invocationJobSummaries"]] == arns[5:11]


async def test_a_page_token_from_other_filters_is_refused(bedrock: Any, arns: list[str]) -> None:
    first = await bedrock.list_model_invocation_jobs(maxResults=5)

    with pytest.raises(bedrock.exceptions.ValidationException) as raised:
        await bedrock.list_model_invocation_jobs(
            maxResults=5, nextToken=first["nextToken"], nameContains="adhoc"
        )

    assert "nextToken" in str(raised.value)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"nextToken": "garbage"}, "nextToken"),
        ({"maxResults": 0}, "maxResults"),
        ({"maxResults": 1001}, "maxResults"),
        ({"statusEquals": "Running"}, "statusEquals"),
        ({"sortOrder": "Sideways"}, "sortOrder"),
    ],
)
async def test_bad_list_parameters_are_validation_errors(
    raw_bedrock: Any, endpoints: Any, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(raw_bedrock.exceptions.ValidationException) as raised:
        await raw_bedrock.list_model_invocation_jobs(**params)

    assert field in str(raised.value)
