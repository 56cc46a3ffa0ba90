"""ingest.py: Manifest.parse and check_against_manifest (no I/O)."""

from __future__ import annotations

import orjson
import pytest

from batch_poller.ingest import FetchError, Manifest, check_against_manifest
from batch_poller.store import RecordTotals

WHERE = "s3://b/out/job/manifest.json.out"


def manifest(total: int, processed: int, success: int, error: int) -> Manifest:
    return Manifest(total, processed, success, error, input_tokens=0, output_tokens=0)


def totals(ok: int, **codes: int) -> RecordTotals:
    error = sum(codes.values())
    return RecordTotals(total=ok + error, ok=ok, error=error, by_error_code=codes)


def test_exact_match_passes() -> None:
    check_against_manifest(totals(8, **{"400": 2}), manifest(10, 10, 8, 2), partial=False)


@pytest.mark.parametrize(("success", "error"), [(9, 1), (8, 2)])
def test_parse_error_may_be_either_kind(success: int, error: int) -> None:
    stored = totals(8, **{"400": 1, "PARSE_ERROR": 1})
    check_against_manifest(stored, manifest(10, 10, success, error), partial=False)


def test_line_too_long_may_be_either_kind() -> None:
    stored = totals(8, **{"400": 1, "LINE_TOO_LONG": 1})
    check_against_manifest(stored, manifest(10, 10, 9, 1), partial=False)


def test_unreadable_lines_widen_the_range_by_their_count_only() -> None:
    check_against_manifest(totals(8, PARSE_ERROR=2), manifest(10, 10, 10, 0), partial=False)
    stored = totals(8, PARSE_ERROR=1, **{"400": 1})
    with pytest.raises(FetchError, match="8 successes stored, manifest says 10"):
        check_against_manifest(stored, manifest(10, 10, 10, 0), partial=False)


def test_missing_record_fails_naming_both_numbers() -> None:
    with pytest.raises(FetchError, match="9 processed records stored, manifest says 10"):
        check_against_manifest(totals(9), manifest(10, 10, 10, 0), partial=False)


def test_error_stored_as_success_fails() -> None:
    with pytest.raises(FetchError, match="0 errors stored, manifest says 1"):
        check_against_manifest(totals(10), manifest(10, 10, 9, 1), partial=False)


def test_partial_job_excludes_not_processed() -> None:
    stored = totals(8, **{"400": 2, "NOT_PROCESSED": 3})
    check_against_manifest(stored, manifest(13, 10, 8, 2), partial=True)


def test_partial_job_grand_total_must_match() -> None:
    stored = totals(8, **{"400": 2, "NOT_PROCESSED": 2})
    with pytest.raises(FetchError, match="12 records stored in all, manifest says 13"):
        check_against_manifest(stored, manifest(13, 10, 8, 2), partial=True)


def test_grand_total_ignored_for_a_complete_job() -> None:
    check_against_manifest(totals(10), manifest(11, 10, 10, 0), partial=False)


def test_manifest_parse() -> None:
    data = orjson.dumps(
        {
            "totalRecordCount": 12,
            "processedRecordCount": 10,
            "successRecordCount": 9,
            "errorRecordCount": 1,
            "inputTokenCount": 1234,
            "outputTokenCount": 567,
        }
    )
    assert Manifest.parse(data, WHERE) == Manifest(12, 10, 9, 1, 1234, 567)


def test_manifest_parse_token_counts_default_to_zero() -> None:
    data = b'{"totalRecordCount":1,"processedRecordCount":1,"successRecordCount":1,'
    data += b'"errorRecordCount":0}'
    parsed = Manifest.parse(data, WHERE)
    assert (parsed.input_tokens, parsed.output_tokens) == (0, 0)


@pytest.mark.parametrize(
    "data",
    [
        b'{"totalRecordCount":1,"processedRecordCount":1,"successRecordCount":1}',
        b"{}",
        b"not json at all",
        b"",
        b"[1, 2, 3]",
        b'{"totalRecordCount":"many","processedRecordCount":1,'
        b'"successRecordCount":1,"errorRecordCount":0}',
    ],
)
def test_manifest_parse_refuses_bad_data(data: bytes) -> None:
    with pytest.raises(FetchError, match=f"^{WHERE} is not a readable manifest"):
        Manifest.parse(data, WHERE)
