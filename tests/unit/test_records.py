"""records.py: one `.jsonl.out` line -> one RecordRow."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from batch_poller.records import (
    LINE_TOO_LONG,
    PARSE_ERROR,
    cut_record_id,
    overlong_line,
    parse_line,
    unreadable_line,
    usage_of,
)

FILE = "input.jsonl.out"
MODEL_INPUT = {"messages": [{"role": "user", "content": "hello"}]}

NOVA = {
    "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18},
}
CLAUDE = {
    "id": "msg_01XyZ",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-haiku-20240307",
    "content": [{"type": "text", "text": "Hi there"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 12, "output_tokens": 8},
}
CONVERSE = {**NOVA, "usage": {"inputTokens": 13, "outputTokens": 9, "totalTokens": 22}}
CONVERSE["metrics"] = {"latencyMs": 321}
TITAN_EMBED = {"embedding": [0.125, -0.5, 0.25], "inputTextTokenCount": 14}
LLAMA = {
    "generation": "Hello!",
    "prompt_token_count": 15,
    "generation_token_count": 10,
    "stop_reason": "stop",
}
OPENAI = {
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hey"}}],
    "usage": {"prompt_tokens": 16, "completion_tokens": 11, "total_tokens": 27},
}

FAMILIES = [
    pytest.param(NOVA, 11, 7, id="nova"),
    pytest.param(CLAUDE, 12, 8, id="claude"),
    pytest.param(CONVERSE, 13, 9, id="converse"),
    pytest.param(TITAN_EMBED, 14, 0, id="titan-embeddings"),
    pytest.param(LLAMA, 15, 10, id="llama"),
    pytest.param(OPENAI, 16, 11, id="openai-style"),
]


def line(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def parse(raw: bytes, *, store_model_input: bool = False, **kwargs: Any) -> Any:
    return parse_line(
        raw, source_file=FILE, line_number=3, store_model_input=store_model_input, **kwargs
    )


@pytest.mark.parametrize(("output", "tokens_in", "tokens_out"), FAMILIES)
def test_success_line_of_each_family(output: Any, tokens_in: int, tokens_out: int) -> None:
    row = parse(line(recordId="r1", modelInput=MODEL_INPUT, modelOutput=output))
    assert row.record_id == "r1"
    assert row.outcome == "ok"
    assert (row.input_tokens, row.output_tokens) == (tokens_in, tokens_out)
    assert isinstance(row.model_output, str)
    assert orjson.loads(row.model_output) == output
    assert (row.source_file, row.line_number) == (FILE, 3)
    assert row.error_code is None and row.raw_text is None


@pytest.mark.parametrize(("output", "tokens_in", "tokens_out"), FAMILIES)
def test_usage_of_each_family(output: Any, tokens_in: int, tokens_out: int) -> None:
    assert usage_of(output) == (tokens_in, tokens_out)


@pytest.mark.parametrize("output", [None, "text", [1, 2], {"completion": "no usage"}])
def test_usage_of_without_usage(output: Any) -> None:
    assert usage_of(output) == (None, None)


def test_model_input_stored_only_when_asked() -> None:
    raw = line(recordId="r1", modelInput=MODEL_INPUT, modelOutput=NOVA)
    assert parse(raw, store_model_input=False).model_input is None
    stored = parse(raw, store_model_input=True).model_input
    assert stored is not None and orjson.loads(stored) == MODEL_INPUT


def test_model_input_of_an_error_line_is_kept_unless_told_not_to() -> None:
    raw = line(recordId="r1", modelInput=MODEL_INPUT, error={"errorCode": 400})
    kept = parse(raw, store_model_input=False).model_input
    assert kept is not None and orjson.loads(kept) == MODEL_INPUT
    dropped = parse(raw, store_model_input=False, store_error_input=False)
    assert dropped.model_input is None
    # A success's input is kept only when every input is.
    success = line(recordId="r2", modelInput=MODEL_INPUT, modelOutput=CLAUDE)
    assert parse(success, store_model_input=False).model_input is None
    assert parse(success, store_model_input=True).model_input is not None


def test_cost_goes_through_the_callback() -> None:
    calls: list[tuple[int, int]] = []

    def cost_of(tokens_in: int, tokens_out: int) -> Decimal:
        calls.append((tokens_in, tokens_out))
        return Decimal("0.25")

    row = parse(line(recordId="r1", modelOutput=CLAUDE), cost_of=cost_of)
    assert calls == [(12, 8)]
    assert row.cost == Decimal("0.25")


def test_cost_is_none_without_a_callback() -> None:
    assert parse(line(recordId="r1", modelOutput=CLAUDE)).cost is None


@pytest.mark.parametrize("code", [400, "400"])
def test_error_line(code: Any) -> None:
    error = {"errorCode": code, "errorMessage": "Malformed input request"}
    row = parse(line(recordId="r9", modelInput=MODEL_INPUT, error=error))
    assert row.record_id == "r9"
    assert row.outcome == "error"
    assert row.error_code == "400"
    assert row.error_message == "Malformed input request"
    assert row.model_output is None
    assert (row.source_file, row.line_number) == (FILE, 3)


UNREADABLE = [
    pytest.param(b"this is not json", "PARSE_ERROR:input.jsonl.out:3", id="not-json"),
    pytest.param(
        b'{"recordId":"rec-7","modelInput":{"messages":[{"role":"us',
        "rec-7",
        id="truncated-with-id",
    ),
    pytest.param(
        b'{"modelInput":{"messages":[{"role":"us', "PARSE_ERROR:input.jsonl.out:3", id="truncated"
    ),
    pytest.param(b'["recordId", "x"]', "PARSE_ERROR:input.jsonl.out:3", id="not-an-object"),
    pytest.param(b'{"modelOutput":{"a":1}}', "PARSE_ERROR:input.jsonl.out:3", id="no-recordId"),
    pytest.param(b'{"recordId":"r5","modelInput":{}}', "r5", id="no-output-nor-error"),
]


@pytest.mark.parametrize(("raw", "record_id"), UNREADABLE)
def test_unreadable_lines_are_kept_as_parse_errors(raw: bytes, record_id: str) -> None:
    row = parse(raw)
    assert row.record_id == record_id
    assert row.outcome == "error"
    assert row.error_code == PARSE_ERROR
    assert row.error_message is not None and row.error_message.startswith(f"{FILE} line 3: ")
    assert (row.source_file, row.line_number) == (FILE, 3)
    assert row.raw_text == raw.decode()


def test_unreadable_line_directly() -> None:
    row = unreadable_line(b"\xffgarbage", "f.jsonl.out", 12, "broken")
    assert row.record_id == "PARSE_ERROR:f.jsonl.out:12"
    assert row.error_message == "f.jsonl.out line 12: broken"
    assert row.raw_text == "\ufffdgarbage"


def test_overlong_line() -> None:
    prefix = b'{"recordId":"big-1","modelInput":{"text":"aaaa'
    row = overlong_line(prefix, 20_000_000, FILE, 4, 16_777_216)
    assert row.record_id == "big-1"
    assert row.outcome == "error"
    assert row.error_code == LINE_TOO_LONG
    assert row.error_message is not None and "20000000 bytes" in row.error_message
    assert "16777216" in row.error_message
    assert (row.source_file, row.line_number) == (FILE, 4)
    assert row.raw_text == prefix.decode()


def test_overlong_line_without_id() -> None:
    row = overlong_line(b'{"modelInput":', 5000, FILE, 4, 1024)
    assert row.record_id == f"{LINE_TOO_LONG}:{FILE}:4"
    assert row.error_code == LINE_TOO_LONG


@pytest.mark.parametrize(
    ("text", "left"),
    [
        ('{"recordId":"j1-000', "j1-000"),
        ('{"recordId": "', ""),
        ('  { "recordId" : "caf\\u00e9-1', "café-1"),
        ('{"recordId":"caf\\u00', "caf"),
        ('{"recordId":"a\\"b', 'a"b'),
        ('{"recordId":"a\\', "a"),
    ],
)
def test_what_is_left_of_an_id_cut_inside_it(text: str, left: str) -> None:
    assert cut_record_id(text) == left


@pytest.mark.parametrize(
    "text",
    ['{"recordId":"whole","modelInput":{', '{"modelInput":{"recordId":"x', "garbage", ""],
)
def test_a_line_not_cut_inside_its_id_has_no_cut_id(text: str) -> None:
    assert cut_record_id(text) is None
