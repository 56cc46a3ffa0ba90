"""One line of a batch input file, checked as Bedrock would read it, or refused with its file
and line. Pure: no I/O.

A line is `{"recordId": "...", "modelInput": {...}}`; the recordId may be left out, and one is
then assigned. Bedrock's own validation reads the JSONL and the record counts but not the
model input, so a prompt in the wrong shape is found only when every record fails: the shape
of each model family is checked here, before anything is uploaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from batch_poller.model_families import Family
from batch_poller.store.text import MAX_RECORD_ID_BYTES

_BOM = b"\xef\xbb\xbf"


class SubmitError(Exception):
    """A submission that cannot go on; the message says what was done and what was not."""


class InputError(SubmitError, ValueError):
    """Input Bedrock would refuse, or run only to fail: nothing is submitted."""


@dataclass(frozen=True, slots=True)
class InputLine:
    # None when the line names no record: one is assigned.
    record_id: str | None
    size: int  # bytes of the line, without its newline


def check_line(raw: bytes, where: str, family: Family, max_line_bytes: int) -> InputLine:
    """The line's record id and size; InputError naming `where` when Bedrock would refuse
    the line or the model its input."""
    if len(raw) > max_line_bytes:
        raise InputError(f"{where}: {len(raw)} bytes, over the {max_line_bytes} limit of a record")
    try:
        item = orjson.loads(raw.removeprefix(_BOM))
    except orjson.JSONDecodeError as error:
        raise InputError(f"{where}: not valid JSON: {error}") from None
    if not isinstance(item, dict):
        raise InputError(f"{where}: not a JSON object")
    record_id = item.get("recordId")
    if "recordId" in item and (not isinstance(record_id, str) or not record_id.strip()):
        raise InputError(f"{where}: recordId must be a non-empty string, not {_shown(record_id)}")
    if isinstance(record_id, str) and "\x00" in record_id:
        raise InputError(f"{where}: recordId holds a NUL character, which no database keeps")
    if isinstance(record_id, str) and len(record_id.encode()) > MAX_RECORD_ID_BYTES:
        raise InputError(
            f"{where}: recordId is over {MAX_RECORD_ID_BYTES} bytes, more than the store keeps"
        )
    if "modelInput" not in item:
        raise InputError(f"{where}: no modelInput")
    model_input = item["modelInput"]
    if not isinstance(model_input, dict):
        raise InputError(f"{where}: modelInput must be a JSON object, not {_shown(model_input)}")
    if problem := _shape_problem(model_input, family):
        raise InputError(f"{where}: modelInput {problem}")
    return InputLine(record_id, len(raw))


def _shape_problem(model_input: dict[str, Any], family: Family) -> str | None:
    """What is wrong with a model input for the family, or None."""
    if family is Family.TITAN_EMBED:
        return _text_field(model_input, "inputText", "Titan embeddings")
    if family is Family.LLAMA:
        return _text_field(model_input, "prompt", "Meta Llama")
    if family is Family.CLAUDE:
        for key in ("anthropic_version", "max_tokens"):
            if key not in model_input:
                return f"has no {key}, which Anthropic Claude's messages API requires"
    return _messages_problem(model_input.get("messages"), family)


def _text_field(model_input: dict[str, Any], key: str, family: str) -> str | None:
    value = model_input.get(key)
    if not isinstance(value, str) or not value:
        return f"needs {key} as a non-empty string for {family}"
    return None


def _messages_problem(messages: Any, family: Family) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f"needs messages, a non-empty list, for the {family} messages shape"
    for n, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{n}] is not a JSON object"
        if message.get("role") not in ("user", "assistant"):
            return (
                f'messages[{n}] has role {_shown(message.get("role"))}, not "user" or "assistant"'
            )
        if "content" not in message:
            return f"messages[{n}] has no content"
    return None


def _shown(value: Any) -> str:
    """A value as it reads in JSON, cut short: an error line never holds a whole prompt."""
    text = orjson.dumps(value).decode() if value is not None else "null"
    return text if len(text) <= 40 else text[:37] + "..."
