"""The JSON schemas of the admin API's bodies, for its OpenAPI document. A test validates real
answers against them, so they say what the daemon sends."""

from __future__ import annotations

import re
from typing import Any

from batch_poller.domain import (
    GROUP_NAME_PATTERN,
    JOB_ARN_PATTERN,
    BedrockStatus,
    GroupStatus,
    JobStatus,
)
from batch_poller.export import EXPORTED_FIELDS
from batch_poller.tracker import Outcome

MAX_OFFSET = 10**9
# The longest text a job search takes, and the most hours the activity covers (a week).
MAX_SEARCH = 200
MAX_ACTIVITY_HOURS = 168
# The domain's ARN pattern in the JSON Schema dialect: no named groups, $ for \Z.
ARN_PATTERN = re.sub(r"\(\?P<\w+>", "(", JOB_ARN_PATTERN.pattern).replace(r"\Z", "$")
GROUP_PATTERN = GROUP_NAME_PATTERN.pattern.replace(r"\Z", "$")
# A folder under a bucket: what an input prefix must look like before it is checked further.
FOLDER_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]*/([^/]+/)+$"


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATUS = {"type": "string", "enum": [status.value for status in JobStatus]}
_BEDROCK_STATUS = {"type": ["string", "null"], "enum": [*(s.value for s in BedrockStatus), None]}
_CLEANUP = {"type": "string", "enum": ["done", "failed", "pending", "waiting", "kept"]}
_DECIMAL = {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}

_SUMMARY_PROPERTIES: dict[str, Any] = {
    "reason": _nullable("string"),
    "batch_job_arn": {"type": "string"},
    "job_id": {"type": "string"},
    "job_name": _nullable("string"),
    "status": _STATUS,
    "bedrock_status": _BEDROCK_STATUS,
    "total_records": _nullable("integer"),
    "success_records": _nullable("integer"),
    "error_records": _nullable("integer"),
    "cost": _DECIMAL,
    "cleanup": _CLEANUP,
    "auto_processing": {"type": "boolean"},
    "last_checked_at": _TIME,
    "group_name": _nullable("string"),
    # Bedrock's count while the job runs: records processed so far, of how many.
    "progress_processed": {"type": ["integer", "null"], "minimum": 0},
    "progress_total": {"type": ["integer", "null"], "minimum": 0},
}
_JOB_PROPERTIES: dict[str, Any] = {
    **_SUMMARY_PROPERTIES,
    "model_id": _nullable("string"),
    "message": _nullable("string"),
    "input_s3_uri": _nullable("string"),
    "s3_folder": _nullable("string"),
    "output_s3_prefix": _nullable("string"),
    "retries_of": {
        **_nullable("string"),
        "description": "A resubmission: the job whose records it runs again",
    },
    "submitted_at": _TIME,
    "completed_at": _TIME,
    "results_fetched_at": _TIME,
    "results_fetch_attempts": {"type": "integer"},
    "last_error": _nullable("string"),
    "cleanup_completed_at": _TIME,
    "cleanup_attempts": {"type": "integer"},
    "input_tokens": _nullable("integer"),
    "output_tokens": _nullable("integer"),
    "bytes_freed": _nullable("integer"),
    "created_at": {"type": "string", "format": "date-time"},
    "updated_at": {"type": "string", "format": "date-time"},
    "group_compiled_at": _TIME,
}
_COUNT = {"type": "integer", "minimum": 0}
_LIST_ITEM_PROPERTIES: dict[str, Any] = {
    **_SUMMARY_PROPERTIES,
    # Both reasons a failed job may have: Bedrock's, and the daemon's own.
    "message": _nullable("string"),
    "last_error": _nullable("string"),
}
_RECORD_COUNTS = {
    "type": "object",
    "required": ["total", "ok", "error"],
    "properties": {key: _nullable("integer") for key in ("total", "ok", "error")},
}
_GROUP_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "status": {"enum": [status.value for status in GroupStatus]},
    "jobs": _nullable("integer"),
    "failed_jobs": _nullable("integer"),
    "records": _RECORD_COUNTS,
    "input_tokens": _nullable("integer"),
    "output_tokens": _nullable("integer"),
    "cost": _DECIMAL,
    "first_submitted_at": _TIME,
    "last_completed_at": _TIME,
    "sealed_at": _TIME,
    "compiled_at": _TIME,
    "created_at": _TIME,
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "passes"],
        "properties": {"status": {"enum": ["ok", "failing"]}, "passes": _COUNT},
    },
    "PollerStatus": {
        "type": "object",
        "required": [
            "state",
            "last_pass_at",
            "next_pass_at",
            "passes",
            "jobs_pending",
            "completed_today",
            "failed_today",
            "cleanups_pending",
            "jobs_in_flight",
            "replica",
            "replicas",
            "uptime_seconds",
            "version",
        ],
        "properties": {
            "state": {"enum": ["running", "paused", "stopping"]},
            "last_pass_at": _TIME,
            "next_pass_at": _TIME,
            "passes": _COUNT,
            "jobs_pending": _COUNT,
            "completed_today": _COUNT,
            "failed_today": _COUNT,
            "cleanups_pending": _COUNT,
            "jobs_in_flight": _COUNT,
            "replica": {"type": "string"},
            "replicas": {"type": "array", "items": {"$ref": "#/components/schemas/Replica"}},
            "uptime_seconds": {"type": "number", "minimum": 0},
            "version": {"type": "string"},
            "events": {
                "type": ["object", "null"],
                "required": [
                    "received",
                    "accepted",
                    "ignored",
                    "last_event_at",
                    "state",
                    "failing_since",
                    "last_error",
                ],
                "properties": {
                    "received": _COUNT,
                    "accepted": _COUNT,
                    "ignored": {"type": "object", "additionalProperties": _COUNT},
                    "last_event_at": _TIME,
                    "state": {"enum": ["receiving", "failing"]},
                    "failing_since": _TIME,
                    "last_error": _nullable("string"),
                },
            },
        },
    },
    "Replica": {
        "type": "object",
        "required": ["owner", "host", "pid", "role", "started_at", "seen_at", "last_pass_at"],
        "properties": {
            "owner": {"type": "string"},
            "host": {"type": "string"},
            "pid": {"type": "integer"},
            "role": {"enum": ["daemon", "command"]},
            "started_at": {"type": "string", "format": "date-time"},
            "seen_at": {"type": "string", "format": "date-time"},
            "last_pass_at": _TIME,
            "jobs": {"type": "array", "items": {"type": "string"}},
        },
    },
    "PassDone": {
        "type": "object",
        "required": ["report"],
        "properties": {
            "report": {
                "type": "object",
                "required": ["jobs", *(outcome.value for outcome in Outcome)],
                "additionalProperties": _COUNT,
            }
        },
    },
    "JobSummary": {
        "type": "object",
        "required": list(_SUMMARY_PROPERTIES),
        "properties": _SUMMARY_PROPERTIES,
    },
    "Job": {
        "type": "object",
        "required": list(_JOB_PROPERTIES),
        "properties": _JOB_PROPERTIES,
    },
    "JobListItem": {
        "type": "object",
        "required": list(_LIST_ITEM_PROPERTIES),
        "properties": _LIST_ITEM_PROPERTIES,
    },
    "JobPage": {
        "type": "object",
        "required": ["jobs", "limit", "offset", "count", "total"],
        "properties": {
            "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/JobListItem"}},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            "count": {**_COUNT, "description": "The jobs on this page"},
            "total": {**_COUNT, "description": "The jobs that match the status and q"},
        },
    },
    "ErrorCounts": {
        "type": "object",
        "required": ["batch_job_arn", "errors", "total"],
        "properties": {
            "batch_job_arn": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["error_code", "count"],
                    "properties": {"error_code": _nullable("string"), "count": _COUNT},
                },
            },
            "total": {**_COUNT, "description": "The job's error records"},
        },
    },
    "Activity": {
        "type": "object",
        "required": ["hours", "start", "end", "buckets"],
        "properties": {
            "hours": {"type": "integer", "minimum": 1, "maximum": MAX_ACTIVITY_HOURS},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            "buckets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "records_stored", "jobs_finished", "jobs_failed"],
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "records_stored": {
                            **_COUNT,
                            "description": "The records of the jobs whose results were stored "
                            "in this hour",
                        },
                        "jobs_finished": {
                            **_COUNT,
                            "description": "The jobs that ended at Bedrock in this hour",
                        },
                        "jobs_failed": {**_COUNT, "description": "Those of them that failed"},
                    },
                },
            },
        },
    },
    "Record": {
        "type": "object",
        "required": [*EXPORTED_FIELDS, "model_output"],
        "properties": {
            "batch_job_arn": {"type": "string"},
            "record_id": {"type": "string"},
            "outcome": {"enum": ["ok", "error"]},
            "output_text": _nullable("string"),
            "error_code": _nullable("string"),
            "error_message": _nullable("string"),
            "input_tokens": _nullable("integer"),
            "output_tokens": _nullable("integer"),
            "cost": _nullable("string"),
            "source_file": _nullable("string"),
            "line_number": _nullable("integer"),
            "model_output": {},
        },
    },
    "RecordPage": {
        "type": "object",
        "required": ["records", "count", "next_cursor"],
        "properties": {
            "records": {"type": "array", "items": {"$ref": "#/components/schemas/Record"}},
            "count": _COUNT,
            "next_cursor": _nullable("string"),
        },
    },
    "SubmissionRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["inputs", "model_id", "role_arn", "bucket"],
        "properties": {
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": {"type": "string", "pattern": "^s3://"},
                "description": "JSONL objects in S3 (never files of the daemon's host)",
            },
            "model_id": {"type": "string"},
            "role_arn": {"type": "string"},
            "bucket": {
                "type": "string",
                "pattern": FOLDER_PATTERN,
                "description": "s3://bucket/prefix/: each job's input and output go below it",
            },
            "name": {"type": "string"},
            "group": {"type": "string", "pattern": GROUP_PATTERN},
            "seal": {
                "type": "boolean",
                "default": False,
                "description": "Seal the group once these jobs are tracked",
            },
            "timeout_hours": {"type": "integer", "minimum": 24, "maximum": 168},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Submission": {
        "type": "object",
        "required": ["jobs"],
        "properties": {
            "jobs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "records", "input_uri", "state", "arn", "error"],
                    "properties": {
                        "name": {"type": "string"},
                        "records": {"type": "integer"},
                        "input_uri": {"type": "string"},
                        "state": {"enum": ["submitted", "already submitted", "queued", "refused"]},
                        "arn": _nullable("string"),
                        "error": _nullable("string"),
                    },
                },
            }
        },
    },
    "TrackRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["batch_job_arn"],
        "properties": {
            "batch_job_arn": {"type": "string", "pattern": ARN_PATTERN},
            "input_prefix": {
                "type": "string",
                "pattern": FOLDER_PATTERN,
                "description": "The job's own input folder, s3://bucket/folder/",
            },
            "group": {
                "type": "string",
                "pattern": GROUP_PATTERN,
                "description": "Put the job in this group (made if new; refused when sealed)",
            },
            "seal": {"type": "boolean", "default": False, "description": "Then seal the group"},
        },
    },
    "Group": {
        "type": "object",
        "required": list(_GROUP_PROPERTIES),
        "properties": _GROUP_PROPERTIES,
    },
    "GroupDetail": {
        "type": "object",
        "required": [*_GROUP_PROPERTIES, "members"],
        "properties": {
            **_GROUP_PROPERTIES,
            "members": {"type": "array", "items": {"$ref": "#/components/schemas/JobSummary"}},
        },
    },
    "GroupPage": {
        "type": "object",
        "required": ["groups", "limit", "offset", "count"],
        "properties": {
            "groups": {"type": "array", "items": {"$ref": "#/components/schemas/Group"}},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            "count": _COUNT,
        },
    },
    "SealRequest": {"type": "object", "additionalProperties": False, "properties": {}},
    "CleanupRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"force": {"type": "boolean", "default": False}},
    },
}
