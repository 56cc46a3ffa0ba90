"""The admin API's handlers. They read through the store and a snapshot of the supervisor, and
change things only through the same calls the CLI makes."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from batch_poller.domain import JobStatus, Step, next_step, parse_group_status, parse_job_status
from batch_poller.export import exported
from batch_poller.hooks.documents import group_document
from batch_poller.http.errors import ApiError, bad_request, conflict, not_found
from batch_poller.http.openapi import openapi_document
from batch_poller.http.schemas import MAX_ACTIVITY_HOURS, MAX_OFFSET, MAX_SEARCH
from batch_poller.ingest import Interrupted
from batch_poller.rows import GroupRow, JobRow
from batch_poller.store import GroupError, LeaseLost, RecordScope, StaleTransition, StoreError
from batch_poller.submission.lines import InputError, SubmitError
from batch_poller.submission.submit import SubmitRequest, submit
from batch_poller.supervisor import JobHeld, Supervisor
from batch_poller.tracker import Outcome
from batch_poller.tracking import TrackError, track_jobs
from batch_poller.views import (
    job_document,
    job_list_item,
    job_summary,
    status_document,
    why_folders_are_kept,
)

log = structlog.get_logger("batch_poller.http")


@dataclass
class AdminContext:
    supervisor: Supervisor
    started: float = field(default_factory=time.monotonic)


CONTEXT = web.AppKey("context", AdminContext)
T = TypeVar("T")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", page)
    r.add_get("/static/{name}", static_file)
    r.add_get("/healthz", healthz)
    r.add_get("/metrics", metrics)
    r.add_get("/api/openapi.json", openapi)
    r.add_get("/api/batch/poller/status", poller_status)
    r.add_post("/api/batch/poller/stop", poller_stop)
    r.add_post("/api/batch/poller/start", poller_start)
    r.add_post("/api/batch/process-completed", process_completed)
    r.add_get("/api/batch/activity", activity)
    r.add_get("/api/batch/jobs", list_jobs)
    r.add_post("/api/batch/jobs", track_job)
    r.add_post("/api/batch/submissions", create_submission)
    # A job ARN holds a "/": the pattern takes it whole, encoded or not.
    r.add_post("/api/batch/jobs/{job:.+}/cleanup", cleanup_job)
    r.add_post("/api/batch/jobs/{job:.+}/retry", retry_job)
    r.add_get("/api/batch/jobs/{job:.+}/records", job_records)
    r.add_get("/api/batch/jobs/{job:.+}/errors", job_errors)
    # Not a path that ends in /cleanup, /retry, /records or /errors: those are the resources
    # above, so a GET of the first two is 405.
    r.add_get("/api/batch/jobs/{job:.+(?<!/cleanup)(?<!/retry)(?<!/records)(?<!/errors)}", get_job)
    r.add_get("/api/batch/records/{record_id}", records_by_id)
    r.add_get("/api/batch/groups", list_groups)
    r.add_get("/api/batch/groups/{group}", get_group)
    r.add_get("/api/batch/groups/{group}/records", group_records)
    r.add_post("/api/batch/groups/{group}/seal", seal_group)


def _context(request: web.Request) -> AdminContext:
    return request.app[CONTEXT]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    """The request body as the model, or a 400 that names the problem."""
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise bad_request("the body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise bad_request(f"{where}: {first['msg']}") from None


async def _job(request: web.Request) -> JobRow:
    """The job the path names by its ARN, its id or its name, as the CLI's commands take it;
    a name that several jobs have (in several accounts) is a 409 naming their ids."""
    ref = request.match_info["job"]
    named = await _context(request).supervisor.rt.store.jobs_named_by(ref)
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(j.job_id for j in named)
        raise conflict(f"{len(named)} jobs are named {ref!r}: name one by its id ({ids})")
    raise not_found(f"no tracked job {ref!r}")


# -- the page and plumbing ---------------------------------------------------------------------

STATIC = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


async def page(request: web.Request) -> web.Response:
    return _static("index.html")


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise not_found(f"no file {name!r}")
    return _static(name)


def _static(name: str) -> web.Response:
    body = resources.files("batch_poller.http").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name], charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    """Answering proves the event loop is alive; 503 while passes fail, with the reason."""
    supervisor = _context(request).supervisor
    health = supervisor.health
    if health.failing:
        return _json({"status": "failing", "passes": supervisor.passes, **health.as_dict()}, 503)
    return _json({"status": "ok", "passes": supervisor.passes})


async def metrics(request: web.Request) -> web.Response:
    rt = _context(request).supervisor.rt
    rt.metrics.set_job_counts(await rt.store.status_counts())
    rt.metrics.set_delivery_counts(await rt.store.outbox.delivery_counts())
    return web.Response(
        body=rt.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"}
    )


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


# -- the poller ----------------------------------------------------------------------------------


async def poller_status(request: web.Request) -> web.Response:
    context = _context(request)
    return _json(await status_document(context.supervisor, context.started))


async def poller_stop(request: web.Request) -> web.Response:
    _context(request).supervisor.pause()
    return await poller_status(request)


async def poller_start(request: web.Request) -> web.Response:
    _context(request).supervisor.resume()
    return await poller_status(request)


async def process_completed(request: web.Request) -> web.Response:
    """A pass now: due checks, RESULT_FETCH_FAILED retries, pending cleanups."""
    report = await _context(request).supervisor.run_pass(retry_failed=True)
    return _json({"report": report.as_dict(), "held": [held.as_dict() for held in report.held]})


# -- jobs ----------------------------------------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    """A page of jobs, and `total`: how many match the status and the search `q`."""
    status, limit, offset = _list_query(request, parse_job_status, "q")
    search = _search(request.query)
    store = _context(request).supervisor.rt.store
    jobs = await store.list_jobs(status, limit=limit, offset=offset, search=search)
    total = await store.count_jobs(status, search=search)
    items = [job_list_item(j) for j in jobs]
    return _json(
        {"jobs": items, "limit": limit, "offset": offset, "count": len(items), "total": total}
    )


def _search(query: Any) -> str | None:
    """The text a job's name or id must hold: `q`, blanks around it dropped; none when empty."""
    text = query.get("q", "").strip()
    if len(text) > MAX_SEARCH:
        raise bad_request(f"q: at most {MAX_SEARCH} characters, not {len(text)}")
    return text or None


def _only(query: Any, *names: str) -> None:
    unknown = set(query) - set(names)
    if unknown:
        raise bad_request(f"unknown query parameter {sorted(unknown)[0]!r}")


def _list_query(
    request: web.Request, parse_status: Callable[[str], T], *more: str
) -> tuple[T | None, int, int]:
    """A list's query: an optional status (any case), a limit and an offset, and the names in
    `more` (read by the caller); nothing else."""
    query = request.query
    _only(query, "status", "limit", "offset", *more)
    status = None
    if "status" in query:
        try:
            status = parse_status(query["status"])
        except ValueError as error:
            raise bad_request(f"status: {error}") from None
    limit = _int_param(query, "limit", 100, 1, 1000)
    offset = _int_param(query, "offset", 0, 0, MAX_OFFSET)
    return status, limit, offset


def _page(name: str, items: list[Any], limit: int, offset: int) -> web.Response:
    return _json({name: items, "limit": limit, "offset": offset, "count": len(items)})


async def job_records(request: web.Request) -> web.Response:
    """A page of a job's stored records in record id order; `next_cursor` asks for the next."""
    job = await _job(request)
    return await _records_page(request, RecordScope(job=job.batch_job_arn))


async def group_records(request: web.Request) -> web.Response:
    """A page of the records of a group's jobs, by job and record id."""
    group = await _group(request)
    return await _records_page(request, RecordScope(group=group.name))


async def records_by_id(request: web.Request) -> web.Response:
    """Every stored record with this record id (an application's work item), across jobs."""
    return await _records_page(request, RecordScope(record_id=request.match_info["record_id"]))


async def job_errors(request: web.Request) -> web.Response:
    """The job's error records counted by error code, the most frequent first."""
    _only(request.query)
    job = await _job(request)
    counts = await _context(request).supervisor.rt.store.error_code_counts(job.batch_job_arn)
    return _json(
        {
            "batch_job_arn": job.batch_job_arn,
            "errors": [{"error_code": code, "count": count} for code, count in counts],
            "total": sum(count for _, count in counts),
        }
    )


async def _records_page(request: web.Request, scope: RecordScope) -> web.Response:
    query = request.query
    _only(query, "cursor", "limit", "outcome", "error_code")
    outcome = query.get("outcome")
    if outcome is not None and outcome not in ("ok", "error"):
        raise bad_request(f"outcome: {outcome!r} is not ok or error")
    limit = _int_param(query, "limit", 100, 1, 1000)
    # An empty cursor is the first page, as no cursor is.
    after = _read_cursor(query["cursor"]) if query.get("cursor") else None
    rows = await _context(request).supervisor.rt.store.records_page(
        scope, after=after, limit=limit, outcome=outcome, error_code=query.get("error_code")
    )
    records = [exported(arn, row, with_output=True) for arn, row in rows]
    cursor = _cursor(rows[-1][0], rows[-1][1].record_id) if len(rows) == limit else None
    return _json({"records": records, "count": len(records), "next_cursor": cursor})


def _cursor(arn: str, record_id: str) -> str:
    """Opaque to clients: the last record's job and id."""
    return base64.urlsafe_b64encode(orjson.dumps([arn, record_id])).decode().rstrip("=")


def _read_cursor(text: str) -> tuple[str, str]:
    try:
        arn, record_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if isinstance(arn, str) and isinstance(record_id, str):
            return arn, record_id
    except (ValueError, TypeError):
        pass
    raise bad_request(f"cursor: {text[:80]!r} is not a next_cursor this API gave")


def _int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise bad_request(f"{name}: {raw!r} must be a whole number from {low} to {high}")
    return int(raw)


async def get_job(request: web.Request) -> web.Response:
    return _json(job_document(await _job(request)))


class TrackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_job_arn: str
    input_prefix: str | None = None
    group: str | None = None
    seal: StrictBool = False  # "yes" is not a yes


async def track_job(request: web.Request) -> web.Response:
    body: TrackBody = await _body(request, TrackBody)
    rt = _context(request).supervisor.rt
    try:
        tracked = await track_jobs(
            rt, [body.batch_job_arn], body.input_prefix, group=body.group, seal=body.seal
        )
    except TrackError as error:
        status = {"unknown": 404, "unavailable": 502, "conflict": 409}.get(error.kind, 400)
        raise ApiError(status, "cannot track", str(error)) from None
    job = await rt.store.get_job(tracked[0].arn)
    assert job is not None
    return _json(job_document(job), status=201 if tracked[0].new else 200)


class SubmissionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[StrictStr] = Field(min_length=1, max_length=100)
    model_id: StrictStr
    role_arn: StrictStr
    bucket: StrictStr
    name: StrictStr | None = None
    group: StrictStr | None = None
    seal: StrictBool = False
    timeout_hours: StrictInt | None = None
    tags: dict[StrictStr, StrictStr] = Field(default_factory=dict)


async def create_submission(request: web.Request) -> web.Response:
    """Submits JSONL objects in S3 as jobs. Only s3:// inputs: a request never makes the
    daemon read a file of its host."""
    body: SubmissionBody = await _body(request, SubmissionBody)
    if body.seal and body.group is None:
        raise bad_request("seal: it seals the group named in group; name one")
    if local := [given for given in body.inputs if not given.startswith("s3://")]:
        raise bad_request(
            f"inputs: {local[0]!r} is not an s3:// URI; the daemon reads no file of its host"
        )
    submission = SubmitRequest(
        inputs=tuple(body.inputs),
        model_id=body.model_id,
        role_arn=body.role_arn,
        folder=body.bucket,
        name=body.name,
        group=body.group,
        seal=body.seal,
        timeout_hours=body.timeout_hours,
        tags=body.tags,
    )
    try:
        jobs = await submit(_context(request).supervisor.rt, submission)
    except InputError as error:
        raise bad_request(str(error)) from None
    except SubmitError as error:
        raise ApiError(502, "cannot submit", str(error)) from None
    if refused := [job for job in jobs if job.state == "refused"]:
        # Bedrock refused a job (the others, if any, are made and tracked: the same request
        # again makes none of them twice).
        raise ApiError(502, "cannot submit", f"{refused[0].name}: {refused[0].error}")
    made = any(job.state in ("submitted", "queued") for job in jobs)
    return _json({"jobs": [dataclasses.asdict(job) for job in jobs]}, status=201 if made else 200)


class CleanupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: StrictBool = False


async def cleanup_job(request: web.Request) -> web.Response:
    body: CleanupBody = await _body(request, CleanupBody)
    job = await _job(request)
    supervisor = _context(request).supervisor
    if job.cleanup_completed_at is None:
        if next_step(job) is not Step.CLEAN:
            raise conflict(why_folders_are_kept(job))
        try:
            outcome = await supervisor.clean_now(job, force=body.force)
        except JobHeld as held:
            raise conflict(str(held)) from None
        job = await _job(request)
        if outcome is not Outcome.CLEANED:
            raise conflict(f"cleanup refused: {job.last_error}")
    return _json(job_document(job))


async def retry_job(request: web.Request) -> web.Response:
    """Fetches a RESULT_FETCH_FAILED job's results again now (then cleans it up, as a pass
    would), under a lease like any pass."""
    job = await _job(request)
    if job.status is not JobStatus.RESULT_FETCH_FAILED:
        raise conflict(
            f"{job.batch_job_arn} is {job.status.value}: only a RESULT_FETCH_FAILED job's fetch "
            "is retried"
        )
    supervisor = _context(request).supervisor
    try:
        outcomes = await _fetch_again(supervisor, job)
    except JobHeld as held:
        raise conflict(str(held)) from None
    except (LeaseLost, StaleTransition) as lost:
        raise conflict(f"another process took the job over: {lost}") from None
    except Interrupted:
        raise conflict("the daemon is stopping: the fetch waits for its next start") from None
    job = await _job(request)
    if Outcome.FETCH_FAILED in outcomes:
        raise conflict(f"the fetch failed again: {job.last_error}")
    return _json(job_document(job))


async def _fetch_again(supervisor: Supervisor, job: JobRow) -> list[Outcome]:
    """The job's fetch, with its lease kept while it runs and given up after."""
    arn = job.batch_job_arn
    store = supervisor.rt.store
    claimed = await store.leases.claim(
        1,
        supervisor.rt.clock.now(),
        check_interval_seconds=0,
        retry_failed_fetch=True,
        steps=(Step.FETCH,),
        only=arn,
        exclude=supervisor.in_flight,
    )
    if not claimed:
        raise JobHeld(await store.get_job(arn) or job)
    # In flight, so that no pass of this process claims it meanwhile.
    supervisor.in_flight.add(arn)
    keeper = asyncio.create_task(supervisor.keep_leases({arn}))
    try:
        return await supervisor.tracker.advance(claimed[0], retry_failed_fetch=True)
    finally:
        keeper.cancel()
        supervisor.in_flight.discard(arn)
        try:
            await store.leases.release([arn])
        except StoreError as error:
            # The lease runs out by itself; the job only waits for it.
            log.warning("lease_release_failed", job_arn=arn, error=str(error))


# -- activity ------------------------------------------------------------------------------------


async def activity(request: web.Request) -> web.Response:
    """The last `hours` hours, this one included, hour by hour: records stored, jobs finished
    at Bedrock (and how many of them failed)."""
    query = request.query
    _only(query, "hours")
    hours = _int_param(query, "hours", 24, 1, MAX_ACTIVITY_HOURS)
    rt = _context(request).supervisor.rt
    now = rt.clock.now()
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    buckets = await rt.store.activity_by_hour(start, hours)
    return _json(
        {
            "hours": hours,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=hours)).isoformat(),
            "buckets": [
                {
                    "start": bucket.start.isoformat(),
                    "records_stored": bucket.records_stored,
                    "jobs_finished": bucket.jobs_finished,
                    "jobs_failed": bucket.jobs_failed,
                }
                for bucket in buckets
            ],
        }
    )


# -- groups --------------------------------------------------------------------------------------


async def _group(request: web.Request) -> GroupRow:
    name = request.match_info["group"]
    group = await _context(request).supervisor.rt.store.get_group(name)
    if group is None:
        raise not_found(f"no group {name!r}")
    return group


async def list_groups(request: web.Request) -> web.Response:
    status, limit, offset = _list_query(request, parse_group_status)
    store = _context(request).supervisor.rt.store
    groups = await store.list_groups(status, limit=limit, offset=offset)
    return _page("groups", [group_document(g) for g in groups], limit, offset)


async def get_group(request: web.Request) -> web.Response:
    group = await _group(request)
    members = await _context(request).supervisor.rt.store.group_members(group.name)
    return _json({**group_document(group), "members": [job_summary(job) for job in members]})


async def seal_group(request: web.Request) -> web.Response:
    await _body(request, EmptyBody)
    rt = _context(request).supervisor.rt
    try:
        group = await rt.store.seal_group(request.match_info["group"], rt.clock.now())
    except GroupError as error:
        if error.kind == "unknown":
            raise not_found(str(error)) from None
        raise conflict(str(error)) from None
    return _json(group_document(group))


class EmptyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
