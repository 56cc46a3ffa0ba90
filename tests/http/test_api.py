"""Every endpoint, with and without the token, bad bodies, unknown jobs, conflicts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from batch_poller.domain import JobStatus
from batch_poller.runtime import Runtime
from batch_poller.supervisor import Supervisor
from tests.daemon_fixtures import BACKENDS
from tests.helpers import BUCKET, create_job, make_records, put_input, read_object
from tests.http.conftest import BEARER, Admin, AdminFactory, every_page
from tests.http.jobs import insert_job, job_arn

UNKNOWN = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefabcdef"

READS = [
    "/",
    "/static/app.js",
    "/static/style.css",
    "/healthz",
    "/metrics",
    "/api/openapi.json",
    "/api/batch/poller/status",
    "/api/batch/jobs",
    "/api/batch/activity",
]
CHANGES = [
    ("/api/batch/poller/stop", None),
    ("/api/batch/poller/start", None),
    ("/api/batch/process-completed", None),
    ("/api/batch/jobs", {"batch_job_arn": UNKNOWN}),
    (f"/api/batch/jobs/{UNKNOWN}/cleanup", {}),
    (f"/api/batch/jobs/{UNKNOWN}/retry", None),
    ("/api/batch/submissions", {"inputs": ["s3://b/x.jsonl"]}),
]


@pytest.mark.parametrize("path", READS)
async def test_reading_is_open_on_loopback(admin: Admin, path: str) -> None:
    status, _ = await admin.call("GET", path)

    assert status == 200


@pytest.mark.parametrize(("path", "body"), CHANGES)
async def test_changes_need_the_token(admin: Admin, path: str, body: Any) -> None:
    missing = await admin.call("POST", path, json=body)
    wrong = await admin.call("POST", path, json=body, auth="Bearer not-the-token")
    other_scheme = await admin.call("POST", path, json=body, auth=f"Basic {admin.token['token']}")

    for status, answer in (missing, wrong, other_scheme):
        assert status == 401
        assert answer["error"] == "unauthorized"


@pytest.mark.parametrize(("path", "body"), CHANGES)
async def test_without_a_configured_token_changes_are_forbidden_and_say_how(
    make_admin: AdminFactory, path: str, body: Any
) -> None:
    admin = await make_admin(token="")

    status, answer = await admin.call("POST", path, json=body, auth="Bearer anything")

    assert status == 403
    assert "admin_token_file" in answer["detail"]
    assert "BATCH_POLLER_HTTP__ADMIN_TOKEN" in answer["detail"]


async def test_pause_and_resume(admin: Admin, supervisor: Supervisor) -> None:
    paused = await admin.call("POST", "/api/batch/poller/stop", auth=BEARER)
    assert paused == (200, paused[1]) and paused[1]["state"] == "paused"
    assert supervisor.paused
    status = (await admin.call("GET", "/api/batch/poller/status"))[1]
    assert status["state"] == "paused" and status["next_pass_at"] is None

    resumed = await admin.call("POST", "/api/batch/poller/start", auth=BEARER)

    assert resumed[0] == 200 and resumed[1]["state"] == "running"
    assert not supervisor.paused


async def test_status_counts_the_days_work(
    admin: Admin, runtime: Runtime, control: Any, submit: Any
) -> None:
    done = await submit(3)
    await submit(2)
    await control.finish(done, "Completed")

    status, before = await admin.call("GET", "/api/batch/poller/status")
    code, answer = await admin.call("POST", "/api/batch/process-completed", auth=BEARER)
    _, after = await admin.call("GET", "/api/batch/poller/status")

    assert status == 200 and before["jobs_pending"] == 2 and before["completed_today"] == 0
    assert code == 200 and answer["report"]["fetched"] == 1 and answer["report"]["cleaned"] == 1
    assert after["completed_today"] == 1 and after["jobs_pending"] == 1
    assert after["passes"] == 1 and after["last_pass_at"] is not None
    assert after["state"] == "running" and after["version"]
    assert after["uptime_seconds"] >= 0 and after["jobs_in_flight"] == 0


async def test_track_a_job_through_the_api(
    admin: Admin, runtime: Runtime, bedrock: Any, s3: Any
) -> None:
    uri = await put_input(s3, "api/input.jsonl", make_records(2))
    arn = await create_job(bedrock, uri)
    body = {"batch_job_arn": arn, "input_prefix": f"s3://{BUCKET}/api/"}

    created = await admin.call("POST", "/api/batch/jobs", json=body, auth=BEARER)
    again = await admin.call("POST", "/api/batch/jobs", json=body, auth=BEARER)
    by_id = await admin.call("GET", f"/api/batch/jobs/{arn.rsplit('/', 1)[-1]}")
    by_arn = await admin.call("GET", f"/api/batch/jobs/{arn}")

    assert created[0] == 201 and created[1]["batch_job_arn"] == arn
    assert created[1]["s3_folder"] == f"s3://{BUCKET}/api/"
    assert again[0] == 200
    assert by_id == by_arn and by_id[0] == 200 and by_id[1]["auto_processing"] is True


def submission(**changes: Any) -> dict[str, Any]:
    """A submission of 120 records in S3 (put there by the test), with these changes."""
    return {
        "inputs": [f"s3://{BUCKET}/incoming/prompts.jsonl"],
        "model_id": "amazon.nova-lite-v1:0",
        "role_arn": "arn:aws:iam::123456789012:role/BedrockBatch",
        "bucket": f"s3://{BUCKET}/submitted/",
        **changes,
    }


async def test_submit_through_the_api_from_s3_once(admin: Admin, runtime: Runtime, s3: Any) -> None:
    await put_input(s3, "incoming/prompts.jsonl", make_records(120))
    body = submission(tags={"team": "search"})

    created = await admin.call("POST", "/api/batch/submissions", json=body, auth=BEARER)
    again = await admin.call("POST", "/api/batch/submissions", json=body, auth=BEARER)

    assert created[0] == 201
    (job,) = created[1]["jobs"]
    assert (job["state"], job["records"]) == ("submitted", 120)
    assert again[0] == 200 and again[1]["jobs"][0]["state"] == "already submitted"
    tracked = await admin.call("GET", f"/api/batch/jobs/{job['arn']}")
    assert tracked[0] == 200 and tracked[1]["s3_folder"].endswith("/input/")


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"inputs": ["/etc/passwd"]}, 400, "'/etc/passwd' is not an s3:// URI"),
        ({"inputs": []}, 400, "inputs"),
        ({"role_arn": "root"}, 400, "not an IAM role ARN"),
        ({"inputs": [f"s3://{BUCKET}/incoming/none.jsonl"]}, 400, "no such object"),
        ({"timeout_hours": "24"}, 400, "timeout_hours"),
        ({"colour": "blue"}, 400, "colour"),
    ],
)
async def test_bad_submissions_are_refused_naming_the_problem(
    admin: Admin, s3: Any, change: dict[str, Any], status: int, words: str
) -> None:
    await put_input(s3, "incoming/prompts.jsonl", make_records(120))
    body = submission(**change)

    answer = await admin.call("POST", "/api/batch/submissions", json=body, auth=BEARER)

    assert answer[0] == status
    assert words in answer[1]["detail"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"batch_job_arn": UNKNOWN}, 404, "unknown job"),
        ({"batch_job_arn": "arn:aws:s3:::bucket"}, 400, "not a Bedrock batch job ARN"),
        ({"batch_job_arn": UNKNOWN, "colour": "blue"}, 400, "colour"),
        ({}, 400, "batch_job_arn"),
        ({"batch_job_arn": 12}, 400, "batch_job_arn"),
        ({"batch_job_arn": UNKNOWN, "input_prefix": "s3://b/"}, 400, "bucket root"),
    ],
)
async def test_bad_track_requests(
    admin: Admin, endpoints: Any, body: Any, status: int, words: str
) -> None:
    code, answer = await admin.call("POST", "/api/batch/jobs", json=body, auth=BEARER)

    assert code == status
    assert words in answer["detail"]


async def test_a_body_that_is_not_json_is_a_400(admin: Admin) -> None:
    code, answer = await admin.call(
        "POST",
        "/api/batch/jobs",
        data=b"{not json",
        auth=BEARER,
        headers={"Content-Type": "application/json"},
    )

    assert code == 400 and answer == {
        "error": "bad request",
        "detail": "the body is not valid JSON",
    }


async def test_a_body_over_the_limit_is_refused(make_admin: AdminFactory) -> None:
    admin = await make_admin(max_body_bytes=1024)

    code, answer = await admin.call(
        "POST",
        "/api/batch/jobs",
        data=b"x" * 5000,
        auth=BEARER,
        headers={"Content-Type": "application/json"},
    )

    assert code == 413
    assert set(answer) == {"error", "detail"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/batch/jobs/abcdefabcdef",
        f"/api/batch/jobs/{UNKNOWN}",
        "/static/secrets.txt",
        "/nothing",
    ],
)
async def test_unknown_things_are_404_in_json(admin: Admin, path: str) -> None:
    code, answer = await admin.call("GET", path)

    assert code == 404
    assert set(answer) == {"error", "detail"}


async def test_a_wrong_method_is_405_in_json(admin: Admin) -> None:
    code, answer = await admin.call("DELETE", "/api/batch/jobs", auth=BEARER)

    assert code == 405 and set(answer) == {"error", "detail"}


@pytest.mark.parametrize(
    ("query", "words"),
    [("status=DONE", "status"), ("limit=0", "limit"), ("limit=x", "limit"), ("sort=asc", "sort")],
)
async def test_bad_job_list_queries(admin: Admin, query: str, words: str) -> None:
    code, answer = await admin.call("GET", f"/api/batch/jobs?{query}")

    assert code == 400 and words in answer["detail"]


async def test_job_list_filters_and_pages(
    admin: Admin, runtime: Runtime, control: Any, submit: Any, supervisor: Supervisor
) -> None:
    arns = [await submit(1) for _ in range(3)]
    await control.finish(arns[0], "Failed")
    await supervisor.run_pass()

    failed = (await admin.call("GET", "/api/batch/jobs?status=failed"))[1]
    first_page = (await admin.call("GET", "/api/batch/jobs?limit=2"))[1]
    second_page = (await admin.call("GET", "/api/batch/jobs?limit=2&offset=2"))[1]

    assert [j["batch_job_arn"] for j in failed["jobs"]] == [arns[0]]
    assert failed["jobs"][0]["status"] == JobStatus.FAILED.value
    assert first_page["count"] == 2 and second_page["count"] == 1
    seen = {j["batch_job_arn"] for j in first_page["jobs"] + second_page["jobs"]}
    assert seen == set(arns)


async def test_a_jobs_records_page_by_cursor_and_filter(
    admin: Admin, control: Any, submit: Any, supervisor: Supervisor
) -> None:
    arn = await submit(12, tags={"emulator:error-rate": "0.25"})
    await control.finish(arn, "Completed")
    await supervisor.run_pass()
    job_id = arn.rsplit("/", 1)[1]

    pages = await every_page(admin, f"/api/batch/jobs/{job_id}/records", 5)
    errors = (await admin.call("GET", f"/api/batch/jobs/{arn}/records?outcome=error"))[1]
    by_code = (await admin.call("GET", f"/api/batch/jobs/{arn}/records?error_code=400"))[1]

    ids = [record["record_id"] for page in pages for record in page["records"]]
    assert [page["count"] for page in pages] == [5, 5, 2]
    assert ids == sorted(ids) and len(set(ids)) == 12
    ok = [record for page in pages for record in page["records"] if record["outcome"] == "ok"]
    assert all(record["output_text"] and record["model_output"]["output"] for record in ok)
    assert errors["count"] == 3 and {r["outcome"] for r in errors["records"]} == {"error"}
    assert [r["record_id"] for r in by_code["records"]] == [
        r["record_id"] for r in errors["records"]
    ]


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("/records?outcome=maybe", 400, "outcome"),
        ("/records?limit=1001", 400, "limit"),
        ("/records?page=2", 400, "page"),
    ],
)
async def test_bad_record_queries(
    admin: Admin, submit: Any, path: str, code: int, words: str
) -> None:
    arn = await submit(1)
    answer = await admin.call("GET", f"/api/batch/jobs/{arn}{path}")
    unknown = await admin.call("GET", "/api/batch/jobs/abcdefabcdef/records")

    assert answer[0] == code and words in answer[1]["detail"]
    assert unknown[0] == 404 and "no tracked job" in unknown[1]["detail"]


async def test_cleanup_of_a_job_without_stored_results_is_a_conflict(
    admin: Admin, submit: Any
) -> None:
    arn = await submit(2)

    code, answer = await admin.call("POST", f"/api/batch/jobs/{arn}/cleanup", json={}, auth=BEARER)

    assert code == 409 and "not stored yet" in answer["detail"]


async def test_cleanup_through_the_api(
    admin: Admin, runtime: Runtime, control: Any, submit: Any, supervisor: Supervisor, s3: Any
) -> None:
    arn = await submit(2)
    await control.finish(arn, "Completed")
    runtime.settings = runtime.settings.model_copy(
        update={"cleanup": runtime.settings.cleanup.model_copy(update={"enabled": False})}
    )
    await supervisor.run_pass()

    code, job = await admin.call(
        "POST", f"/api/batch/jobs/{arn}/cleanup", json={"force": False}, auth=BEARER
    )

    assert code == 200 and job["cleanup"] == "done" and job["bytes_freed"] > 0


async def test_an_internal_error_never_shows_a_stack_trace(admin: Admin, runtime: Runtime) -> None:
    await runtime.store.engine.dispose()
    original = runtime.store.list_jobs

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals at /srv/app.py line 12")

    runtime.store.list_jobs = broken  # type: ignore[method-assign]
    try:
        code, answer = await admin.call("GET", "/api/batch/jobs")
    finally:
        runtime.store.list_jobs = original  # type: ignore[method-assign]

    assert code == 500
    assert answer == {
        "error": "internal error",
        "detail": "the daemon could not answer; see its log",
    }


async def test_the_page_is_sent_with_protective_headers(admin: Admin) -> None:
    async with admin.http.get(admin.server.url + "/") as response:
        html = await response.text()
        headers = response.headers

    assert "<title>batch-poller</title>" in html
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


@BACKENDS
async def test_job_list_searches_names_and_ids_and_counts_every_match(
    admin: Admin, runtime: Runtime
) -> None:
    now = runtime.clock.now()
    store = runtime.store
    names = ["Nightly-Report", "nightly_eval", "nightlyXeval", "100%-sample", "1000-sample", "a/b"]
    for n, name in enumerate(names, start=1):
        await insert_job(store, n, now, name=name)
    await insert_job(store, 9, now, name="nightly-failed", status=JobStatus.FAILED)

    async def found(query: str) -> tuple[list[str | None], int, int]:
        code, page = await admin.call("GET", f"/api/batch/jobs?{query}")
        assert code == 200, page
        return [job["job_name"] for job in page["jobs"]], page["count"], page["total"]

    any_case = await found("q=NIGHTLY&limit=2")
    underscore = await found("q=nightly_")  # "_" is itself, not any one character
    percent = await found("q=100%25")  # "%" is itself, not anything
    slash = await found("q=A%2FB")  # and so is LIKE's escape character
    by_id = await found(f"q={job_arn(3)[-5:]}")
    by_arn = await found(f"q={job_arn(4)}")
    failed = await found("status=failed&q=night")
    nothing = await found("q=nightly&offset=100")

    assert any_case == (["Nightly-Report", "nightly_eval"], 2, 4)
    assert underscore == (["nightly_eval"], 1, 1)
    assert percent == (["100%-sample"], 1, 1)
    assert slash == (["a/b"], 1, 1)
    assert by_id == (["nightlyXeval"], 1, 1)
    assert by_arn == (["100%-sample"], 1, 1)
    assert failed == (["nightly-failed"], 1, 1)
    assert nothing == ([], 0, 4)


@BACKENDS
@pytest.mark.parametrize(
    ("query", "code", "words"),
    [
        ("q=" + "x" * 201, 400, "q: at most 200"),
        ("q=%00%FF%ED%A0%80", 200, ""),  # a NUL, bytes that are not UTF-8: nothing matches
        ("q=%5C%25%5F", 200, ""),  # an escape character before % and _
        ("q=%2F%25%2F_", 200, ""),  # the one LIKE escapes with
        ("q=+++", 200, ""),  # blanks only: no search
        ("limit=99999999999999999999", 400, "limit"),
        ("offset=1000000000", 200, ""),
        ("status=%FF", 400, "status"),
        ("q=a&q=b", 200, ""),
    ],
)
async def test_hostile_job_list_queries_get_an_answer_or_a_clear_refusal(
    admin: Admin, runtime: Runtime, query: str, code: int, words: str
) -> None:
    await insert_job(runtime.store, 1, runtime.clock.now(), name="plain")

    status, answer = await admin.call("GET", f"/api/batch/jobs?{query}")

    assert status == code, answer
    if code == 400:
        assert answer["detail"].startswith(words)
    else:
        assert answer["count"] == len(answer["jobs"]) <= answer["total"] <= 1


@BACKENDS
async def test_a_jobs_errors_are_counted_by_code(
    admin: Admin, control: Any, submit: Any, supervisor: Supervisor
) -> None:
    arn = await submit(12, tags={"emulator:error-rate": "0.25"})
    clean = await submit(2)
    for finished in (arn, clean):
        await control.finish(finished, "Completed")
    await supervisor.run_pass()

    code, counts = await admin.call("GET", f"/api/batch/jobs/{arn.rsplit('/', 1)[1]}/errors")
    none = await admin.call("GET", f"/api/batch/jobs/{clean}/errors")
    unknown = await admin.call("GET", f"/api/batch/jobs/{UNKNOWN}/errors")
    asked_more = await admin.call("GET", f"/api/batch/jobs/{arn}/errors?limit=3")

    assert code == 200
    assert counts == {
        "batch_job_arn": arn,
        "errors": [{"error_code": "400", "count": 3}],
        "total": 3,
    }
    assert none == (200, {"batch_job_arn": clean, "errors": [], "total": 0})
    assert unknown[0] == 404
    assert asked_more[0] == 400 and "limit" in asked_more[1]["detail"]


@BACKENDS
async def test_activity_counts_records_stored_and_jobs_finished_hour_by_hour(
    admin: Admin, runtime: Runtime
) -> None:
    now = runtime.clock.now() + timedelta(minutes=25)  # 12:25, in the current hour
    runtime.clock.current = now  # type: ignore[attr-defined]
    hour = timedelta(hours=1)
    store = runtime.store
    await insert_job(
        store, 1, now, status=JobStatus.COMPLETED, total_records=40,
        results_fetched_at=now - timedelta(minutes=5), completed_at=now - timedelta(minutes=20),
    )  # fmt: skip
    await insert_job(
        store, 2, now, status=JobStatus.COMPLETED, total_records=7,
        results_fetched_at=now - 3 * hour, completed_at=now - 3 * hour,
    )  # fmt: skip
    await insert_job(store, 3, now, status=JobStatus.FAILED, completed_at=now - 3 * hour)
    await insert_job(
        store, 4, now, status=JobStatus.COMPLETED, total_records=99,
        results_fetched_at=now - 25 * hour, completed_at=now - 25 * hour,
    )  # fmt: skip

    code, day = await admin.call("GET", "/api/batch/activity")
    _, two_hours = await admin.call("GET", "/api/batch/activity?hours=2")

    assert code == 200 and day["hours"] == 24 and len(day["buckets"]) == 24
    current = day["buckets"][-1]
    assert current["start"] == "2026-01-15T12:00:00+00:00" == two_hours["buckets"][-1]["start"]
    assert day["end"] == "2026-01-15T13:00:00+00:00"
    assert day["start"] == "2026-01-14T13:00:00+00:00"
    assert (current["records_stored"], current["jobs_finished"], current["jobs_failed"]) == (
        40, 1, 0,
    )  # fmt: skip
    three_ago = day["buckets"][-4]
    assert three_ago["start"] == "2026-01-15T09:00:00+00:00"
    assert (three_ago["records_stored"], three_ago["jobs_finished"]) == (7, 2)
    assert three_ago["jobs_failed"] == 1
    assert sum(b["records_stored"] for b in day["buckets"]) == 47  # not the one 25 h ago
    assert len(two_hours["buckets"]) == 2


@pytest.mark.parametrize(
    ("query", "words"),
    [("hours=0", "hours"), ("hours=169", "hours"), ("hours=%C2%B2", "hours"), ("days=1", "days")],
)
async def test_bad_activity_queries(admin: Admin, query: str, words: str) -> None:
    code, answer = await admin.call("GET", f"/api/batch/activity?{query}")

    assert code == 400 and words in answer["detail"]


async def test_a_failed_fetch_is_retried_for_one_job(
    admin: Admin, control: Any, submit: Any, supervisor: Supervisor, s3: Any
) -> None:
    arn = await submit(6)
    await control.finish(arn, "Completed")
    manifest_key = f"out/{arn.rsplit('/', 1)[1]}/manifest.json.out"
    manifest = await read_object(s3, manifest_key)
    await s3.delete_object(Bucket=BUCKET, Key=manifest_key)
    await supervisor.run_pass()
    path = f"/api/batch/jobs/{arn}/retry"

    again = await admin.call("POST", path, auth=BEARER)
    await s3.put_object(Bucket=BUCKET, Key=manifest_key, Body=manifest)
    code, job = await admin.call("POST", path, auth=BEARER)
    done = await admin.call("POST", path, auth=BEARER)

    assert again[0] == 409 and "the fetch failed again" in again[1]["detail"]
    assert "no manifest" in again[1]["detail"]
    assert code == 200 and job["status"] == "COMPLETED" and job["total_records"] == 6
    assert job["cleanup"] == "done" and job["claimed_by"] is None
    assert done[0] == 409 and "only a RESULT_FETCH_FAILED job" in done[1]["detail"]
    assert supervisor.in_flight == set()


async def test_a_get_on_the_retry_path_is_405(admin: Admin) -> None:
    code, answer = await admin.call("GET", "/api/batch/jobs/abcdefabcdef/retry")

    assert code == 405 and answer["error"] == "method not allowed"


@BACKENDS
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/batch/jobs/a%00b"),
        ("GET", "/api/batch/jobs/a%00b/errors"),
        ("GET", "/api/batch/jobs/a%00b/records"),
        ("POST", "/api/batch/jobs/a%00b/retry"),
    ],
)
async def test_a_job_named_with_a_nul_is_unknown_on_every_database(
    admin: Admin, method: str, path: str
) -> None:
    # PostgreSQL refuses a NUL in text: the name is asked for as the store keeps text.
    code, answer = await admin.call(method, path, auth=BEARER)

    assert code == 404 and answer["error"] == "not found"


@BACKENDS
async def test_a_job_is_found_by_its_name_and_a_shared_name_is_a_conflict(
    admin: Admin, runtime: Runtime
) -> None:
    now = runtime.clock.now()
    store = runtime.store
    only = await insert_job(store, 1, now, name="nightly.v1+eval")
    for n in (2, 3):  # two accounts' jobs may have one name
        await insert_job(store, n, now, name="shared")

    by_name = await admin.call("GET", "/api/batch/jobs/nightly.v1+eval")
    encoded = await admin.call("GET", "/api/batch/jobs/nightly.v1%2Beval")
    records = await admin.call("GET", "/api/batch/jobs/nightly.v1+eval/records")
    errors = await admin.call("GET", "/api/batch/jobs/nightly.v1+eval/errors")
    cleanup = await admin.call(
        "POST", "/api/batch/jobs/nightly.v1+eval/cleanup", json={}, auth=BEARER
    )
    shared = [
        await admin.call("GET", "/api/batch/jobs/shared"),
        await admin.call("GET", "/api/batch/jobs/shared/records"),
        await admin.call("GET", "/api/batch/jobs/shared/errors"),
        await admin.call("POST", "/api/batch/jobs/shared/cleanup", json={}, auth=BEARER),
        await admin.call("POST", "/api/batch/jobs/shared/retry", auth=BEARER),
    ]
    unknown = await admin.call("GET", "/api/batch/jobs/nightly")

    assert by_name[0] == 200 and by_name[1]["batch_job_arn"] == only
    assert encoded == by_name
    assert records == (200, {"records": [], "count": 0, "next_cursor": None})
    assert errors == (200, {"batch_job_arn": only, "errors": [], "total": 0})
    # Found by its name, and refused for what it is: running, nothing stored to clean.
    assert cleanup[0] == 409 and "not stored yet" in cleanup[1]["detail"]
    for code, answer in shared:
        assert code == 409 and answer["error"] == "conflict"
        assert answer["detail"] == (
            "2 jobs are named 'shared': name one by its id (000000000002, 000000000003)"
        )
    assert unknown[0] == 404 and unknown[1]["detail"] == "no tracked job 'nightly'"
