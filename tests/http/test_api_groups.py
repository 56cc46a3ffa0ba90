"""Groups and records through the admin API: jobs put in a group as they are tracked, the group
sealed, compiled, read with its jobs, its records paged across jobs, and a record found by its
id whichever job holds it."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import BEARER, Admin, every_page


async def _track(admin: Admin, arn: str, **body: Any) -> tuple[int, Any]:
    return await admin.call(
        "POST", "/api/batch/jobs", auth=BEARER, json={"batch_job_arn": arn, **body}
    )


async def test_a_group_tracked_sealed_compiled_and_read(
    admin: Admin, submit: Any, control: Any
) -> None:
    first, second = await submit(4), await submit(3, tags={"emulator:error-rate": "0.5"})
    assert (await _track(admin, first, group="analysis-9"))[0] == 200
    code, listed = await admin.call("GET", "/api/batch/groups?status=open")
    assert code == 200 and [g["name"] for g in listed["groups"]] == ["analysis-9"]

    code, job = await _track(admin, second, group="analysis-9", seal=True)
    assert code == 200 and job["group_name"] == "analysis-9"
    code, late = await _track(admin, await submit(1), group="analysis-9")
    assert code == 409 and "sealed" in late["detail"]

    for arn in (first, second):
        await control.finish(arn, "Completed")
    assert (await admin.call("POST", "/api/batch/process-completed", auth=BEARER))[0] == 200

    code, group = await admin.call("GET", "/api/batch/groups/analysis-9")
    assert code == 200 and group["status"] == "PARTIALLY_COMPLETED"
    assert group["records"]["total"] == 7 and group["records"]["error"] > 0
    assert sorted(m["batch_job_arn"] for m in group["members"]) == sorted([first, second])
    # The job that settled first waited for the compile; the next pass cleans it up.
    assert {m["cleanup"] for m in group["members"]} <= {"done", "pending"}
    assert (await admin.call("POST", "/api/batch/process-completed", auth=BEARER))[0] == 200
    _, group = await admin.call("GET", "/api/batch/groups/analysis-9")
    assert {m["cleanup"] for m in group["members"]} == {"done"}

    pages = await every_page(admin, "/api/batch/groups/analysis-9/records", 3)
    keys = [(r["batch_job_arn"], r["record_id"]) for p in pages for r in p["records"]]
    assert len(keys) == len(set(keys)) == 7 and keys == sorted(keys)
    assert {arn for arn, _ in keys} == {first, second}

    # A record found by its id alone: the application's work item.
    wanted_arn, wanted_id = keys[-1]
    code, found = await admin.call("GET", f"/api/batch/records/{wanted_id}")
    assert code == 200
    assert [(r["batch_job_arn"], r["record_id"]) for r in found["records"]] == [
        (wanted_arn, wanted_id)
    ]
    code, nothing = await admin.call("GET", "/api/batch/records/no-such-record")
    assert code == 200 and nothing == {"records": [], "count": 0, "next_cursor": None}

    # Sealing again changes nothing.
    code, again = await admin.call("POST", "/api/batch/groups/analysis-9/seal", auth=BEARER)
    assert code == 200 and again["compiled_at"] == group["compiled_at"]


async def test_group_requests_that_cannot_be_done_say_why(admin: Admin, submit: Any) -> None:
    arn = await submit(1)
    code, bad_name = await _track(admin, arn, group="has spaces")
    assert code == 400 and "not a group name" in bad_name["detail"]
    code, loose = await _track(admin, arn, group="g", seal="yes")
    assert code == 400 and "seal" in loose["detail"]
    code, lone = await _track(admin, arn, seal=True)
    assert code == 400 and "sealing needs the group" in lone["detail"]
    code, missing = await admin.call("POST", "/api/batch/groups/nope/seal", auth=BEARER)
    assert code == 404 and missing["detail"] == "no group 'nope'"
    assert (await admin.call("POST", "/api/batch/groups/nope/seal"))[0] == 401
    assert (await admin.call("GET", "/api/batch/groups/nope"))[0] == 404
    assert (await admin.call("GET", "/api/batch/groups/nope/records"))[0] == 404
    code, status = await admin.call("GET", "/api/batch/groups?status=done")
    assert code == 400 and "unknown group status 'done'" in status["detail"]
    code, cursor = await admin.call("GET", f"/api/batch/jobs/{arn}/records?cursor=abc%00")
    assert code == 400 and "is not a next_cursor this API gave" in cursor["detail"]
    assert (await _track(admin, arn, group="first"))[0] == 200
    code, moved = await _track(admin, arn, group="second")
    assert code == 409 and "already in group 'first'" in moved["detail"]
    code, body = await admin.call(
        "POST", "/api/batch/groups/first/seal", auth=BEARER, json={"force": True}
    )
    assert code == 400 and "force" in body["detail"]
