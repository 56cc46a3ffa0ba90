"""records.parse_line and record ids, over any id: a whole line gives its id back exactly; a
line that cannot be read gives its own id or the placeholder of where it was read, never
another record's id."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from batch_poller.records import PARSE_ERROR, parse_line

FILE = "input.jsonl.out"
LINE_NUMBER = 7
PLACEHOLDER = f"{PARSE_ERROR}:{FILE}:{LINE_NUMBER}"
SALVAGE_WINDOW = 4096  # bytes of a kept line searched for its id
MAX_SALVAGED = 256  # escaped bytes of an id the salvage reads

# Any text a JSON string can hold: NUL and other controls, astral characters (escaped as
# surrogate pairs by an ASCII writer), line separators, combining marks, right-to-left text.
IDS = st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["\x00", "a\x00b", "\U0001f600", "\u2028", "e\u0301", "\u202eabc", '"', "\\", "\\u0000"]
)
# A model input that may hold keys named like the record's own.
NESTED = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.dictionaries(st.sampled_from(["recordId", "text", "x"]), inner, max_size=3)
        | st.lists(inner, max_size=3)
    ),
    max_leaves=6,
)


def _units(quoted: bytes) -> int:
    """A JSON string's length as the salvage counts it: a byte, or an escape's first pair."""
    return len(re.findall(rb'[^"\\]|\\.', quoted[1:-1]))


# Ids the salvage can read back: not empty, and short enough once escaped by any writer. An
# empty or longer id is one of the defects marked below.
SALVAGEABLE_IDS = IDS.filter(lambda i: bool(i) and _units(json.dumps(i).encode()) <= MAX_SALVAGED)


def encode(item: dict[str, Any], style: str) -> bytes:
    """A line as different writers write it: raw UTF-8, or every non-ASCII escaped."""
    if style == "orjson":
        return orjson.dumps(item)
    return json.dumps(item, ensure_ascii=style == "ascii").encode()


def record(record_id: str, model_input: Any, success: bool) -> dict[str, Any]:
    # Bedrock writes recordId first.
    if success:
        return {"recordId": record_id, "modelInput": model_input, "modelOutput": {"ok": True}}
    return {
        "recordId": record_id,
        "modelInput": model_input,
        "error": {"errorCode": 400, "errorMessage": "bad"},
    }


def parsed_id(raw: bytes) -> str:
    return parse_line(
        raw, source_file=FILE, line_number=LINE_NUMBER, store_model_input=False
    ).record_id


STYLES = st.sampled_from(["orjson", "ascii", "unicode"])


@settings(max_examples=300, deadline=None)
@given(IDS, NESTED, st.booleans(), STYLES)
@example("\x00", None, True, "orjson")
@example("\U0001f600", {"recordId": "other"}, False, "ascii")
def test_a_whole_line_gives_its_id_back(
    record_id: str, model_input: Any, success: bool, style: str
) -> None:
    raw = encode(record(record_id, model_input, success), style)

    row = parse_line(raw, source_file=FILE, line_number=LINE_NUMBER, store_model_input=False)

    assert row.record_id == record_id
    assert row.outcome == ("ok" if success else "error")
    assert row.error_code != PARSE_ERROR


@given(st.characters(categories=["Cs"]), st.text(max_size=4), st.text(max_size=4))
def test_a_lone_surrogate_id_is_kept_as_an_unreadable_line(
    surrogate: str, before: str, after: str
) -> None:
    # JSON can escape a lone surrogate; no UTF-8 text can hold it, so the line is kept whole
    # under the placeholder rather than under an id that is not its own.
    raw = encode(record(before + surrogate + after, None, True), "ascii")

    row = parse_line(raw, source_file=FILE, line_number=LINE_NUMBER, store_model_input=False)

    assert row.record_id == PLACEHOLDER
    assert row.error_code == PARSE_ERROR


@st.composite
def cut_lines(draw: st.DrawFn) -> tuple[str, bytes, int]:
    record_id = draw(SALVAGEABLE_IDS)
    raw = encode(record(record_id, draw(NESTED), draw(st.booleans())), draw(STYLES))
    return record_id, raw, draw(st.integers(0, len(raw) - 1))


def _id_is_whole_in(record_id: str, kept: bytes) -> bool:
    """Whether the salvage can see the id: its string closed within the window, not too long."""
    forms = {
        orjson.dumps(record_id),
        json.dumps(record_id).encode(),
        json.dumps(record_id, ensure_ascii=False).encode(),
    }
    return bool(record_id) and any(
        kept.startswith(key + form)
        and len(key + form) <= SALVAGE_WINDOW
        and _units(form) <= MAX_SALVAGED
        for key in (b'{"recordId":', b'{"recordId": ')
        for form in forms
    )


@settings(max_examples=400, deadline=None)
@given(cut_lines())
@example(("r1", b'{"recordId":"r1","modelInput":{"recordId":"r2"},"modelOutput":{}}', 40))
def test_a_cut_line_is_kept_under_its_own_id_or_the_placeholder(
    cut_line: tuple[str, bytes, int],
) -> None:
    record_id, raw, end = cut_line
    kept = raw[:end]

    found = parsed_id(kept)

    assert found in {record_id, PLACEHOLDER}
    if _id_is_whole_in(record_id, kept) and found != record_id:
        pytest.fail(f"the id {record_id!r} is whole in {kept!r} but was not salvaged")


@settings(max_examples=200, deadline=None)
@given(SALVAGEABLE_IDS, NESTED, STYLES, st.sampled_from([b"\xff", b"\xc3", b"\x00", b"\x01"]))
def test_a_line_spoilt_after_its_id_keeps_its_id(
    record_id: str, model_input: Any, style: str, bad: bytes
) -> None:
    raw = encode(record(record_id, model_input, True), style)
    spoilt = raw[:-1] + b',"note":"' + bad + b'"}'  # invalid UTF-8 or a raw control byte

    row = parse_line(spoilt, source_file=FILE, line_number=LINE_NUMBER, store_model_input=False)

    assert row.error_code == PARSE_ERROR
    assert row.record_id == (record_id if _id_is_whole_in(record_id, spoilt) else PLACEHOLDER)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"modelInput":{"recordId":"other"},"recordId":"mine","modelOutput":{"a":',
        b'{"recordId":5,"modelInput":{"recordId":"other"},"modelOutput":{}}',
        b'{"recordId":null,"modelInput":{"recordId":"other"},"modelOutput":{}}',
        b'{"recordId":"","modelInput":{"recordId":"other"},"modelOutput":{"a":',
        b'{"recordId":"' + b"m" * 300 + b'","modelInput":{"recordId":"other"},"modelOutput":',
    ],
)
def test_a_nested_record_id_is_never_taken_for_the_lines_own(raw: bytes) -> None:
    assert parsed_id(raw) in {"mine", "", "m" * 300, PLACEHOLDER}


def test_a_byte_order_mark_before_a_record_is_ignored() -> None:
    raw = b"\xef\xbb\xbf" + orjson.dumps(record("r1", None, True))

    row = parse_line(raw, source_file=FILE, line_number=1, store_model_input=False)

    assert (row.record_id, row.outcome, row.error_code) == ("r1", "ok", None)
