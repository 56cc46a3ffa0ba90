"""One line of a `.jsonl.out` file -> one RecordRow. Pure: no I/O.

Bedrock writes `{recordId, modelInput, modelOutput}` for a success and
`{recordId, modelInput, error: {errorCode, errorMessage}}` for a failure. A line that is not
such an object is kept as an error record with its raw text, so nothing is dropped in silence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from batch_poller.rows import RecordRow

PARSE_ERROR = "PARSE_ERROR"
LINE_TOO_LONG = "LINE_TOO_LONG"
NOT_PROCESSED = "NOT_PROCESSED"
# Lines kept because they could not be read as records.
UNREADABLE_CODES = (PARSE_ERROR, LINE_TOO_LONG)
# A line's own id is its first key, as Bedrock writes it; a recordId further on may be one
# nested in modelInput, naming another record.
_RECORD_ID = re.compile(rb'^\s*\{\s*"recordId"\s*:\s*"((?:[^"\\]|\\.){1,256})"')
_BOM = b"\xef\xbb\xbf"


def parse_line(
    raw: bytes,
    *,
    source_file: str,
    line_number: int,
    store_model_input: bool,
    store_error_input: bool = True,
    cost_of: Callable[[int, int], Any] | None = None,
) -> RecordRow:
    # JSON readers may ignore a byte order mark (RFC 8259, 8.1); a file written with one
    # still holds records.
    try:
        item = orjson.loads(raw.removeprefix(_BOM))
    except orjson.JSONDecodeError as problem:
        return unreadable_line(raw, source_file, line_number, f"not valid JSON: {problem}")
    if not isinstance(item, dict) or not isinstance(item.get("recordId"), str):
        return unreadable_line(raw, source_file, line_number, "not a record: no recordId")
    record_id: str = item["recordId"]
    if "modelOutput" in item:
        model_input = _json_text(item.get("modelInput")) if store_model_input else None
        output = item["modelOutput"]
        input_tokens, output_tokens = usage_of(output)
        return RecordRow(
            record_id=record_id,
            outcome="ok",
            model_output=_json_text(output),
            model_input=model_input,
            source_file=source_file,
            line_number=line_number,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost_of(input_tokens or 0, output_tokens or 0) if cost_of else None,
        )
    error = item.get("error")
    if not isinstance(error, dict):
        return unreadable_line(raw, source_file, line_number, "neither modelOutput nor error")
    code = error.get("errorCode")
    # An error's input is what a resubmission runs again: kept unless told otherwise.
    keep_input = store_model_input or store_error_input
    return RecordRow(
        record_id=record_id,
        outcome="error",
        model_input=_json_text(item.get("modelInput")) if keep_input else None,
        # Bedrock has written errorCode both as a number and as a string.
        error_code=None if code is None else str(code),
        error_message=None if error.get("errorMessage") is None else str(error["errorMessage"]),
        source_file=source_file,
        line_number=line_number,
    )


def unreadable_line(raw: bytes, source_file: str, line_number: int, why: str) -> RecordRow:
    """An error record standing for a line that cannot be read as a record. It keeps the whole
    line: that is the only copy once the output folder is cleaned up."""
    return _kept_line(raw, PARSE_ERROR, why, source_file, line_number)


def overlong_line(
    prefix: bytes, length: int, source_file: str, line_number: int, limit: int
) -> RecordRow:
    """An error record for a line longer than [results] max_line_bytes: kept, not buffered."""
    why = f"{length} bytes, over the {limit} limit"
    return _kept_line(prefix, LINE_TOO_LONG, why, source_file, line_number)


def placeholder_id(code: str, source_file: str | None, line_number: int | None) -> str:
    """The id of a kept line that does not name its record: where it was read."""
    return f"{code}:{source_file}:{line_number}"


def _kept_line(text: bytes, code: str, why: str, source_file: str, line_number: int) -> RecordRow:
    readable = text.decode("utf-8", errors="replace")
    return RecordRow(
        # A truncated line often still names its record; its own id keeps that link.
        record_id=_salvaged_id(text) or placeholder_id(code, source_file, line_number),
        outcome="error",
        error_code=code,
        error_message=f"{source_file} line {line_number}: {why}",
        source_file=source_file,
        line_number=line_number,
        raw_text=readable,
        # The store keeps text as UTF-8 without NUL: other bytes are kept exactly beside it.
        raw_bytes=None if readable.encode() == text and "\x00" not in readable else text,
    )


def usage_of(output: Any) -> tuple[int | None, int | None]:
    """Input and output tokens, from whichever usage keys the model family writes."""
    if not isinstance(output, dict):
        return None, None
    usage = output.get("usage")
    if isinstance(usage, dict):
        for input_key, output_key in _USAGE_KEYS:
            if input_key in usage or output_key in usage:
                return _int(usage.get(input_key)), _int(usage.get(output_key))
    if "inputTextTokenCount" in output:  # Titan embeddings
        return _int(output["inputTextTokenCount"]), 0
    if "prompt_token_count" in output:  # Meta Llama
        return _int(output["prompt_token_count"]), _int(output.get("generation_token_count"))
    return None, None


_USAGE_KEYS = (
    ("inputTokens", "outputTokens"),  # Amazon Nova, Converse
    ("input_tokens", "output_tokens"),  # Anthropic Claude
    ("prompt_tokens", "completion_tokens"),  # OpenAI-style models
)


# Token counts are stored as 32-bit integers: a count outside is no count at all.
_MAX_TOKENS = 2**31 - 1


def _int(value: Any) -> int | None:
    # `type() is int` also refuses a bool, a subclass of int: one check, on every record.
    return value if type(value) is int and 0 <= value <= _MAX_TOKENS else None


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _salvaged_id(raw: bytes) -> str | None:
    """A truncated line often still names its record; keep that link when it does."""
    match = _RECORD_ID.match(raw[:4096].removeprefix(_BOM))
    if match is None:
        return None
    try:
        value = orjson.loads(b'"' + match.group(1) + b'"')
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) and value else None


_CUT_ID = re.compile(r'^\s*\{\s*"recordId"\s*:\s*"((?:[^"\\]|\\.)*)\\?\Z', re.DOTALL)


def cut_record_id(text: str) -> str | None:
    """What is left of the id of a line cut inside it (`{"recordId":"j1-00` gives `j1-00`);
    None when the line was not cut there."""
    match = _CUT_ID.match(text)
    if match is None:
        return None
    escaped = match.group(1)
    # A cut can fall inside an escape (\u00e9 cut after \u00): drop the broken escape.
    for end in range(len(escaped), max(len(escaped) - 6, -1), -1):
        try:
            value = orjson.loads(f'"{escaped[:end]}"')
        except orjson.JSONDecodeError:
            continue
        return value if isinstance(value, str) else None
    return None
