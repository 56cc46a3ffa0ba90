"""The OpenAPI document of the admin API, served at /api/openapi.json. A test keeps it in line
with the routes the server really has."""

from __future__ import annotations

from typing import Any

from batch_poller import __version__
from batch_poller.domain import GroupStatus, JobStatus
from batch_poller.http.schemas import MAX_ACTIVITY_HOURS, MAX_OFFSET, MAX_SEARCH, SCHEMAS

_ERROR = {"$ref": "#/components/responses/Error"}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _media(description: str, *media_types: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {} for media in media_types}}


def _op(
    summary: str,
    ok: dict[str, Any],
    *errors: int,
    body: str | None = None,
    guarded: bool = False,
    params: list[dict[str, Any]] | None = None,
    host_checked: bool = True,
    created: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    if created:
        responses["201"] = created
    codes = set(errors)
    if body:
        codes |= {400, 413}  # a body that is not the schema's, or over [http] max_body_bytes
    if guarded:
        codes |= {401, 403}
    if host_checked:
        codes.add(421)  # a Host header the daemon does not answer to
    responses.update({str(code): _ERROR for code in sorted(codes)})
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        operation["requestBody"] = {
            "required": body not in ("CleanupRequest", "SealRequest"),
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if guarded:
        operation["security"] = _BEARER
    if params:
        operation["parameters"] = params
    return operation


_JOB_PARAM = {
    "name": "job",
    "in": "path",
    "required": True,
    "description": "The job's ARN, id or name: its whole ARN, its 12-character job id, or its "
    "name (a name several tracked jobs have is refused with 409, naming their ids)",
    "schema": {"type": "string"},
}
_NAME_PARAM = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_LIST_PARAMS = [
    {
        "name": "status",
        "in": "query",
        "description": "A daemon status (any case is accepted)",
        "schema": {"type": "string", "enum": [status.value for status in JobStatus]},
    },
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    {
        "name": "offset",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
    },
]
_JOB_LIST_PARAMS = [
    *_LIST_PARAMS,
    {
        "name": "q",
        "in": "query",
        "description": "Text in the job's name or id, any case (% and _ are plain characters), "
        "or its whole ARN",
        "schema": {"type": "string", "maxLength": MAX_SEARCH},
    },
]
_HOURS_PARAM = {
    "name": "hours",
    "in": "query",
    "description": "How many hours, the current one included",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ACTIVITY_HOURS, "default": 24},
}

_GROUP_PARAM = {
    "name": "group",
    "in": "path",
    "required": True,
    "description": "The group's name",
    "schema": {"type": "string"},
}
_RECORD_ID_PARAM = {
    "name": "record_id",
    "in": "path",
    "required": True,
    "description": "The recordId the application gave the input line",
    "schema": {"type": "string"},
}
_GROUP_LIST_PARAMS = [
    {
        "name": "status",
        "in": "query",
        "description": "A group status (any case is accepted)",
        "schema": {"type": "string", "enum": [status.value for status in GroupStatus]},
    },
    *_LIST_PARAMS[1:],
]

_RECORD_PARAMS = [
    {
        "name": "cursor",
        "in": "query",
        "description": "The next_cursor of the page before: the records after its last",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    {"name": "outcome", "in": "query", "schema": {"type": "string", "enum": ["ok", "error"]}},
    {"name": "error_code", "in": "query", "schema": {"type": "string"}},
]


def _healthz() -> dict[str, Any]:
    operation = _op(
        "The event loop answers; 503 while passes fail. Answered whatever the Host",
        _json("Health", "Alive, passes succeed"),
        host_checked=False,
    )
    operation["responses"]["503"] = _json("Health", "Alive, passes fail")
    return operation


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "batch-poller admin API", "version": __version__},
        "paths": {
            "/": {"get": _op("The status page", _media("HTML", "text/html"))},
            "/static/{name}": {
                "get": _op(
                    "A file of the status page",
                    _media("The file", "text/html", "text/javascript", "text/css"),
                    404,
                    params=[_NAME_PARAM],
                )
            },
            "/healthz": {"get": _healthz()},
            "/metrics": {
                "get": _op("Prometheus metrics", _media("Text exposition format", "text/plain"))
            },
            "/api/openapi.json": {
                "get": _op("This document", _media("OpenAPI 3.1", "application/json"))
            },
            "/api/batch/poller/status": {
                "get": _op("The poller's state", _json("PollerStatus", "The poller's state"))
            },
            "/api/batch/poller/stop": {
                "post": _op(
                    "Pause polling; the process keeps serving",
                    _json("PollerStatus", "The poller's state"),
                    guarded=True,
                )
            },
            "/api/batch/poller/start": {
                "post": _op(
                    "Resume polling", _json("PollerStatus", "The poller's state"), guarded=True
                )
            },
            "/api/batch/process-completed": {
                "post": _op(
                    "A pass now: due checks, failed fetches retried, pending cleanups",
                    _json("PassDone", "What the pass did"),
                    guarded=True,
                )
            },
            "/api/batch/jobs": {
                "get": _op(
                    "Tracked jobs, newest first; a status, a search, and how many match",
                    _json("JobPage", "A page of jobs"),
                    400,
                    params=_JOB_LIST_PARAMS,
                ),
                "post": _op(
                    "Track a job, in a group if named",
                    _json("Job", "The job, already tracked"),
                    404,
                    409,
                    502,
                    body="TrackRequest",
                    guarded=True,
                    created=_json("Job", "The job, tracked now"),
                ),
            },
            "/api/batch/submissions": {
                "post": _op(
                    "Check JSONL objects in S3, submit them as jobs (split when over the"
                    " per-job limits), track them; the same input again makes no new job",
                    _json("Submission", "Every job submitted already"),
                    502,
                    body="SubmissionRequest",
                    guarded=True,
                    created=_json("Submission", "The jobs: submitted, or queued for quota"),
                )
            },
            "/api/batch/jobs/{job}": {
                "get": _op("One job", _json("Job", "The job"), 404, 409, params=[_JOB_PARAM])
            },
            "/api/batch/jobs/{job}/records": {
                "get": _op(
                    "A page of the job's stored records, in record id order",
                    _json("RecordPage", "A page of records"),
                    400,
                    404,
                    409,
                    params=[_JOB_PARAM, *_RECORD_PARAMS],
                )
            },
            "/api/batch/jobs/{job}/errors": {
                "get": _op(
                    "The job's error records counted by error code, the most frequent first",
                    _json("ErrorCounts", "Counts by error code"),
                    400,
                    404,
                    409,
                    params=[_JOB_PARAM],
                )
            },
            "/api/batch/jobs/{job}/retry": {
                "post": _op(
                    "Fetch a RESULT_FETCH_FAILED job's results again now (then clean it up, as "
                    "a pass would)",
                    _json("Job", "The job, its results stored"),
                    404,
                    409,
                    guarded=True,
                    params=[_JOB_PARAM],
                )
            },
            "/api/batch/activity": {
                "get": _op(
                    "Records stored and jobs finished, hour by hour, the current hour last",
                    _json("Activity", "Hour by hour"),
                    400,
                    params=[_HOURS_PARAM],
                )
            },
            "/api/batch/records/{record_id}": {
                "get": _op(
                    "Every stored record with this record id (an application's work item), "
                    "across jobs",
                    _json("RecordPage", "A page of records"),
                    400,
                    params=[_RECORD_ID_PARAM, *_RECORD_PARAMS],
                )
            },
            "/api/batch/groups": {
                "get": _op(
                    "Groups of jobs, newest first",
                    _json("GroupPage", "A page of groups"),
                    400,
                    params=_GROUP_LIST_PARAMS,
                )
            },
            "/api/batch/groups/{group}": {
                "get": _op(
                    "One group, with its jobs",
                    _json("GroupDetail", "The group"),
                    404,
                    params=[_GROUP_PARAM],
                )
            },
            "/api/batch/groups/{group}/records": {
                "get": _op(
                    "A page of the records of the group's jobs, by job and record id",
                    _json("RecordPage", "A page of records"),
                    400,
                    404,
                    params=[_GROUP_PARAM, *_RECORD_PARAMS],
                )
            },
            "/api/batch/groups/{group}/seal": {
                "post": _op(
                    "Seal the group: it takes no more jobs, and is compiled once they settle",
                    _json("Group", "The group, sealed (compiled if its jobs have settled)"),
                    404,
                    409,
                    body="SealRequest",
                    guarded=True,
                    params=[_GROUP_PARAM],
                )
            },
            "/api/batch/jobs/{job}/cleanup": {
                "post": _op(
                    "Delete the job's S3 folders now",
                    _json("Job", "The job, cleaned"),
                    404,
                    409,
                    body="CleanupRequest",
                    guarded=True,
                    params=[_JOB_PARAM],
                )
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
            "schemas": SCHEMAS,
        },
    }
