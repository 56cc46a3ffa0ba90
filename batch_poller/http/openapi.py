"""The OpenAPI document of the admin API, served at /api/openapi.json. A test keeps it in line
with the routes the server really has."""

from __future__ import annotations

from typing import Any

from batch_poller import __version__

_ERROR = {"$ref": "#/components/responses/Error"}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _op(
    summary: str,
    ok: str,
    *errors: int,
    body: str | None = None,
    guarded: bool = False,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": ok}, **{str(code): _ERROR for code in errors}},
    }
    if body:
        operation["requestBody"] = {
            "required": body != "CleanupRequest",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if guarded:
        operation["security"] = _BEARER
        operation["responses"].update({"401": _ERROR, "403": _ERROR})
    if params:
        operation["parameters"] = params
    return operation


_JOB_PARAM = {
    "name": "job",
    "in": "path",
    "required": True,
    "description": "The job ARN or its 12-character job id",
    "schema": {"type": "string"},
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "batch-poller admin API", "version": __version__},
        "paths": {
            "/": {"get": _op("The status page", "HTML")},
            "/static/{name}": {
                "get": _op(
                    "A file of the status page",
                    "The file",
                    404,
                    params=[
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
            "/healthz": {"get": _op("The event loop answers", "Alive")},
            "/metrics": {"get": _op("Prometheus metrics", "Text exposition format")},
            "/api/openapi.json": {"get": _op("This document", "OpenAPI 3.1")},
            "/api/batch/poller/status": {"get": _op("The poller's state", "PollerStatus")},
            "/api/batch/poller/stop": {
                "post": _op(
                    "Pause polling; the process keeps serving", "PollerStatus", guarded=True
                )
            },
            "/api/batch/poller/start": {
                "post": _op("Resume polling", "PollerStatus", guarded=True)
            },
            "/api/batch/process-completed": {
                "post": _op(
                    "A pass now: due checks, failed fetches retried, pending cleanups",
                    "What the pass did",
                    guarded=True,
                )
            },
            "/api/batch/jobs": {
                "get": _op(
                    "Tracked jobs, newest first",
                    "A page of jobs",
                    400,
                    params=[
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0},
                        },
                    ],
                ),
                "post": _op(
                    "Track a job (201 when new, 200 when already tracked)",
                    "The job",
                    400,
                    404,
                    413,
                    502,
                    body="TrackRequest",
                    guarded=True,
                ),
            },
            "/api/batch/jobs/{job}": {"get": _op("One job", "The job", 404, params=[_JOB_PARAM])},
            "/api/batch/jobs/{job}/cleanup": {
                "post": _op(
                    "Delete the job's S3 folders now",
                    "The job, cleaned",
                    400,
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
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["error", "detail"],
                                "properties": {
                                    "error": {"type": "string"},
                                    "detail": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
            "schemas": {
                "TrackRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["batch_job_arn"],
                    "properties": {
                        "batch_job_arn": {"type": "string"},
                        "input_prefix": {"type": "string", "description": "s3://bucket/folder/"},
                    },
                },
                "CleanupRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"force": {"type": "boolean", "default": False}},
                },
            },
        },
    }
