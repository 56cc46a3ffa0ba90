"""The emulator's HTTP face: Bedrock's batch operations and a job's tags, and a control API
under /_emulator for tests, the demo and the benchmark."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from batch_poller.domain import JOB_ARN_PATTERN, BedrockStatus
from batch_poller.emulator.lifecycle import EmulatedJob
from batch_poller.emulator.protocol import (
    ApiError,
    invalid,
    job_document,
    parse_create,
    parse_timestamp,
)
from batch_poller.emulator.registry import JobRegistry
from batch_poller.emulator.settings import EmulatorSettings, Faults

REGISTRY = web.AppKey("registry", JobRegistry)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(registry: JobRegistry) -> web.Application:
    app = web.Application(middlewares=[_bedrock_errors], client_max_size=1024 * 1024)
    app[REGISTRY] = registry
    # Route names are the operation names: the middleware counts calls by them.
    app.router.add_post("/model-invocation-job", _create, name="CreateModelInvocationJob")
    app.router.add_post("/model-invocation-job/{job:.+}/stop", _stop, name="StopModelInvocationJob")
    app.router.add_get("/model-invocation-job/{job:.+}", _get, name="GetModelInvocationJob")
    app.router.add_get("/model-invocation-jobs", _list, name="ListModelInvocationJobs")
    app.router.add_post("/listTagsForResource", _list_tags, name="ListTagsForResource")
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/_emulator/settings", _get_settings)
    app.router.add_put("/_emulator/settings", _put_settings)
    app.router.add_get("/_emulator/calls", _calls)
    app.router.add_post("/_emulator/clock", _clock)
    app.router.add_get("/_emulator/jobs/{job}", _job_state)
    app.router.add_post("/_emulator/jobs/{job}/advance", _advance)
    app.router.add_post("/_emulator/jobs/{job}/finish", _finish)
    app.router.add_put("/_emulator/jobs/{job}/faults", _job_faults)
    app.router.add_delete("/_emulator/jobs/{job}/faults", _clear_job_faults)
    return app


OPERATIONS = frozenset(
    {
        "CreateModelInvocationJob",
        "GetModelInvocationJob",
        "ListModelInvocationJobs",
        "ListTagsForResource",
        "StopModelInvocationJob",
    }
)


@web.middleware
async def _bedrock_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts Bedrock calls, applies the configured faults, and turns errors into Bedrock's."""
    registry = request.app[REGISTRY]
    name = request.match_info.route.name
    operation = name if name in OPERATIONS else None
    try:
        if operation is not None:
            registry.calls[operation] += 1
            latency = registry.settings.faults.latency_ms
            if latency:
                await asyncio.sleep(latency / 1000)
            fault = registry.global_fault(operation)
            if fault is not None:
                raise fault
        response = await handler(request)
        if operation is not None and (delay := registry.answer_delay(operation)):
            await asyncio.sleep(delay)
        return response
    except ApiError as error:
        if operation is not None:
            registry.calls[f"{operation}:{error.code}"] += 1
        return error.response()


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except ValueError:
        raise invalid("the request body is not valid JSON") from None


async def _job_for_call(request: web.Request) -> EmulatedJob:
    """The job a Get or Stop names, after its own injected faults and latency."""
    registry = request.app[REGISTRY]
    job = registry.find(request.match_info["job"])
    if job.faults is not None and job.faults.latency_ms:
        await asyncio.sleep(job.faults.latency_ms / 1000)
    fault = registry.job_fault(job)
    if fault is not None:
        raise fault
    await registry.settle(job)
    return job


# -- Bedrock operations ----------------------------------------------------------------------


async def _create(request: web.Request) -> web.Response:
    job = await request.app[REGISTRY].create(parse_create(await _json_body(request)))
    return web.json_response({"jobArn": job.job_arn})


async def _get(request: web.Request) -> web.Response:
    return web.json_response(job_document(await _job_for_call(request)))


async def _list_tags(request: web.Request) -> web.Response:
    body = await _json_body(request)
    arn = body.get("resourceARN") if isinstance(body, dict) else None
    if not isinstance(arn, str) or not JOB_ARN_PATTERN.match(arn):
        raise invalid(f"resourceARN: {arn!r} is not a batch inference job's ARN")
    job = request.app[REGISTRY].find(arn)
    return web.json_response({"tags": [{"key": k, "value": v} for k, v in job.tags.items()]})


async def _stop(request: web.Request) -> web.Response:
    job = await _job_for_call(request)
    await request.app[REGISTRY].stop(job)
    return web.json_response({})


async def _list(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    await registry.settle_all()
    query = request.query
    jobs = sorted(registry.all_jobs(), key=lambda j: j.sequence)
    order = query.get("sortOrder", "Descending")
    if order not in ("Ascending", "Descending"):
        raise invalid(f"sortOrder: {order!r} must be Ascending or Descending")
    if query.get("sortBy", "CreationTime") != "CreationTime":
        raise invalid(f"sortBy: {query['sortBy']!r} must be CreationTime")
    if order == "Descending":
        jobs.reverse()
    wanted = query.get("statusEquals")
    if wanted is not None and wanted not in BedrockStatus.__members__.values():
        raise invalid(f"statusEquals: {wanted!r} is not a job status")
    jobs = [j for j in jobs if _matches(j, query)]
    max_results = _max_results(query.get("maxResults"))
    filters = _filter_fingerprint(query)
    if "nextToken" in query:
        after = _read_token(query["nextToken"], filters)
        jobs = [
            j for j in jobs if (j.sequence < after if order == "Descending" else j.sequence > after)
        ]
    page = jobs[:max_results]
    body: dict[str, Any] = {"invocationJobSummaries": [job_document(j) for j in page]}
    if len(jobs) > max_results:
        body["nextToken"] = _make_token(page[-1].sequence, filters)
    return web.json_response(body)


def _matches(job: EmulatedJob, query: Any) -> bool:
    if "statusEquals" in query and job.status.value != query["statusEquals"]:
        return False
    if "nameContains" in query and query["nameContains"] not in job.job_name:
        return False
    if "submitTimeAfter" in query and job.submit_time <= parse_timestamp(
        query["submitTimeAfter"], "submitTimeAfter"
    ):
        return False
    return not (
        "submitTimeBefore" in query
        and job.submit_time >= parse_timestamp(query["submitTimeBefore"], "submitTimeBefore")
    )


def _max_results(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise invalid(f"maxResults: {raw!r} must be a whole number from 1 to 1000")
    return int(raw)


def _filter_fingerprint(query: Any) -> str:
    keys = ("statusEquals", "nameContains", "submitTimeAfter", "submitTimeBefore", "sortOrder")
    return "|".join(str(query.get(k, "")) for k in keys)


def _make_token(sequence: int, filters: str) -> str:
    raw = json.dumps({"after": sequence, "filters": filters}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _read_token(token: str, filters: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = int(data["after"])
        same_filters = data["filters"] == filters
    except (ValueError, KeyError, TypeError):
        raise invalid("nextToken: not a token this operation returned") from None
    if not same_filters:
        raise invalid("nextToken: it was returned for a request with other filters")
    return after


# -- control API -----------------------------------------------------------------------------


def _control_job(request: web.Request) -> EmulatedJob:
    return request.app[REGISTRY].find(request.match_info["job"])


def _settings_error(error: ValidationError) -> ApiError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return invalid(f"{where}: {first['msg']}")


async def _reset(request: web.Request) -> web.Response:
    request.app[REGISTRY].reset()
    return web.json_response({"reset": True})


async def _get_settings(request: web.Request) -> web.Response:
    return web.json_response(request.app[REGISTRY].settings.model_dump(mode="json"))


async def _put_settings(request: web.Request) -> web.Response:
    """Merges the given fields into the current settings, section by section."""
    registry = request.app[REGISTRY]
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise invalid("the settings must be a JSON object")
    current = registry.settings.model_dump()
    for key, value in body.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            current[key] = {**current[key], **value}
        else:
            current[key] = value
    try:
        registry.configure(EmulatorSettings.model_validate(current))
    except ValidationError as error:
        raise _settings_error(error) from None
    return web.json_response(registry.settings.model_dump(mode="json"))


async def _calls(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[REGISTRY].calls))


async def _clock(request: web.Request) -> web.Response:
    """{"freeze": true|false, "advance_seconds": n}: tests move time instead of waiting."""
    registry = request.app[REGISTRY]
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) - {"freeze", "advance_seconds"}:
        raise invalid("the clock takes only freeze and advance_seconds")
    freeze = body.get("freeze")
    if freeze is True:
        registry.clock.freeze()
    elif freeze is False:
        registry.clock.unfreeze()
    seconds = body.get("advance_seconds", 0)
    if not isinstance(seconds, int | float) or seconds < 0:
        raise invalid("advance_seconds: must be a number of seconds, zero or more")
    registry.clock.advance(float(seconds))
    await registry.settle_all()
    return web.json_response({"now": registry.clock.now(), "frozen": registry.clock.frozen})


async def _job_state(request: web.Request) -> web.Response:
    job = _control_job(request)
    await request.app[REGISTRY].settle(job)
    return web.json_response(
        {
            **job_document(job),
            "history": [s.value for s in job.history],
            "options": job.options.model_dump(mode="json"),
            "faults": job.faults.model_dump(mode="json") if job.faults else None,
        }
    )


async def _advance(request: web.Request) -> web.Response:
    job = _control_job(request)
    await request.app[REGISTRY].advance(job)
    return web.json_response(job_document(job))


async def _finish(request: web.Request) -> web.Response:
    """{"status": "Completed" | "PartiallyCompleted" | "Failed" | "Expired" | "Stopped",
    "message": "..."} ends the job now."""
    job = _control_job(request)
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) - {"status", "message"}:
        raise invalid("finish takes status and an optional message")
    try:
        status = BedrockStatus(str(body.get("status")))
    except ValueError:
        raise invalid(f"status: {body.get('status')!r} is not a job status") from None
    message = body.get("message")
    if message is not None and not isinstance(message, str):
        raise invalid("message: must be a string")
    await request.app[REGISTRY].finish(job, status, message)
    return web.json_response(job_document(job))


async def _job_faults(request: web.Request) -> web.Response:
    """A Faults object for this job's Get and Stop calls."""
    job = _control_job(request)
    try:
        faults = Faults.model_validate(await _json_body(request))
    except ValidationError as error:
        raise _settings_error(error) from None
    request.app[REGISTRY].set_job_faults(job, faults)
    return web.json_response(faults.model_dump(mode="json"))


async def _clear_job_faults(request: web.Request) -> web.Response:
    request.app[REGISTRY].set_job_faults(_control_job(request), None)
    return web.json_response({"faults": None})
