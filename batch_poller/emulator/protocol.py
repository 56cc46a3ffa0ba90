"""Bedrock's REST-JSON wire format: errors botocore maps to its exception classes, timestamps,
the job document, and the validation Bedrock applies to a CreateModelInvocationJob request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from batch_poller.aws.bedrock import ROLE_PATTERN, S3_URI_PATTERN
from batch_poller.emulator.lifecycle import EmulatedJob

_STATUS_OF = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    # 400, as botocore's model declares it, not the 409 its name suggests.
    "ConflictException": 400,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _STATUS_OF[self.code]

    def response(self) -> web.Response:
        # botocore's rest-json parser takes the error code from this header.
        return web.json_response(
            {"message": self.message},
            status=self.http_status,
            headers={"x-amzn-ErrorType": f"{self.code}:http://internal.amazon.com/coral/"},
        )


def invalid(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as Bedrock sends them."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_timestamp(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            raise invalid(f"{field}: not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def job_document(job: EmulatedJob, *, summary: bool = False) -> dict[str, Any]:
    """GetModelInvocationJob's answer; a list summary carries the same fields."""
    doc: dict[str, Any] = {
        "jobArn": job.job_arn,
        "jobName": job.job_name,
        "modelId": job.model_id,
        "roleArn": job.role_arn,
        "status": job.status.value,
        "submitTime": timestamp(job.submit_time),
        "inputDataConfig": {
            "s3InputDataConfig": {"s3Uri": job.input_uri, "s3InputFormat": "JSONL"}
        },
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": job.output_uri}},
        "timeoutDurationInHours": job.timeout_hours,
    }
    if job.client_request_token:
        doc["clientRequestToken"] = job.client_request_token
    if job.message:
        doc["message"] = job.message
    if job.last_modified_time:
        doc["lastModifiedTime"] = timestamp(job.last_modified_time)
    if job.end_time:
        doc["endTime"] = timestamp(job.end_time)
    doc["jobExpirationTime"] = timestamp(job.submit_time + timedelta(hours=job.timeout_hours))
    doc["modelInvocationType"] = job.options.invocation_type
    if job.vpc_config is not None:
        doc["vpcConfig"] = job.vpc_config
    if job.counts is not None:
        doc.update(job.counts.as_document())
    return doc


NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9+\-.])*$")
TOKEN_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
TAG_PATTERN = re.compile(r"^[a-zA-Z0-9\s._:/=+@-]*$")


@dataclass(frozen=True)
class CreateRequest:
    job_name: str
    role_arn: str
    model_id: str
    input_uri: str
    output_uri: str
    timeout_hours: int
    client_request_token: str | None
    tags: dict[str, str]
    model_invocation_type: str | None = None
    vpc_config: dict[str, list[str]] | None = None


def parse_create(body: Any) -> CreateRequest:
    """Check a create request the way Bedrock does; every error names its field."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    job_name = _required_string(body, "jobName")
    if len(job_name) > 63 or not NAME_PATTERN.match(job_name):
        raise invalid(
            f"jobName: {job_name!r} must be 1 to 63 characters matching "
            "[a-zA-Z0-9](-*[a-zA-Z0-9\\+\\-\\.])*"
        )
    role_arn = _required_string(body, "roleArn")
    if not ROLE_PATTERN.match(role_arn):
        raise invalid(f"roleArn: {role_arn!r} is not an IAM role ARN")
    model_id = _required_string(body, "modelId")
    if len(model_id) > 2048:
        raise invalid("modelId: longer than 2048 characters")
    input_uri = _nested_uri(body, "inputDataConfig", "s3InputDataConfig")
    output_uri = _nested_uri(body, "outputDataConfig", "s3OutputDataConfig")
    fmt = body["inputDataConfig"]["s3InputDataConfig"].get("s3InputFormat", "JSONL")
    if fmt != "JSONL":
        raise invalid(f"inputDataConfig.s3InputDataConfig.s3InputFormat: {fmt!r} is not JSONL")
    timeout = body.get("timeoutDurationInHours", 24)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 24 <= timeout <= 168:
        raise invalid(f"timeoutDurationInHours: {timeout!r} must be a whole number from 24 to 168")
    token = body.get("clientRequestToken")
    if token is not None and (
        not isinstance(token, str) or len(token) > 256 or not TOKEN_PATTERN.match(token)
    ):
        raise invalid(f"clientRequestToken: {token!r} is not a valid idempotency token")
    return CreateRequest(
        job_name=job_name,
        role_arn=role_arn,
        model_id=model_id,
        input_uri=input_uri,
        output_uri=output_uri,
        timeout_hours=timeout,
        client_request_token=token,
        tags=_tags(body.get("tags", [])),
        model_invocation_type=_invocation_type(body.get("modelInvocationType")),
        vpc_config=_vpc_config(body.get("vpcConfig")),
    )


def _invocation_type(value: Any) -> str | None:
    if value is None:
        return None
    if value in ("InvokeModel", "Converse"):
        return str(value)
    raise invalid(f"modelInvocationType: {value!r} is not InvokeModel or Converse")


def _vpc_config(value: Any) -> dict[str, list[str]] | None:
    """subnetIds (1 to 16) and securityGroupIds (1 to 5), as the model bounds them."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"subnetIds", "securityGroupIds"}:
        raise invalid("vpcConfig: needs subnetIds and securityGroupIds, and nothing else")
    for key, most in (("subnetIds", 16), ("securityGroupIds", 5)):
        ids = value[key]
        if not isinstance(ids, list) or not 1 <= len(ids) <= most:
            raise invalid(f"vpcConfig.{key}: a list of 1 to {most} ids")
        if not all(isinstance(i, str) and 0 < len(i) <= 32 for i in ids):
            raise invalid(f"vpcConfig.{key}: every id is a string of 1 to 32 characters")
    return {key: list(value[key]) for key in ("subnetIds", "securityGroupIds")}


def _required_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None or value == "":
        raise invalid(f"{name}: a value is required")
    if not isinstance(value, str):
        raise invalid(f"{name}: must be a string")
    return value


def _nested_uri(body: dict[str, Any], outer: str, inner: str) -> str:
    field = f"{outer}.{inner}.s3Uri"
    config = body.get(outer)
    if not isinstance(config, dict) or not isinstance(config.get(inner), dict):
        raise invalid(f"{outer}.{inner}: a value is required")
    uri = config[inner].get("s3Uri")
    if not isinstance(uri, str) or not uri:
        raise invalid(f"{field}: a value is required")
    if len(uri) > 1024 or not S3_URI_PATTERN.match(uri):
        raise invalid(f"{field}: {uri!r} is not a valid s3:// URI")
    return uri


def _tags(raw: Any) -> dict[str, str]:
    if not isinstance(raw, list) or len(raw) > 200:
        raise invalid("tags: must be a list of at most 200 {key, value} objects")
    tags = {}
    for tag in raw:
        key, value = (tag.get("key"), tag.get("value")) if isinstance(tag, dict) else (None, None)
        if not isinstance(key, str) or not isinstance(value, str):
            raise invalid("tags: every tag needs a string key and value")
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise invalid(f"tags: {key!r} has a key or value of the wrong length")
        if not TAG_PATTERN.match(key) or not TAG_PATTERN.match(value):
            raise invalid(f"tags: {key!r} holds characters a tag cannot have")
        tags[key] = value
    return tags
