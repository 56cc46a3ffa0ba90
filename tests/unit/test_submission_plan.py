"""submission/lines.py and plan.py: input lines checked per model family, ids made unique,
records split over jobs within Bedrock's per-job limits."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from batch_poller.model_families import Family
from batch_poller.submission.lines import InputError, check_line
from batch_poller.submission.plan import SubmitLimits, plan_submission


def nova(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "recordId": f"rec-{n:05d}",
        "modelInput": {"messages": [{"role": "user", "content": [{"text": f"q{n}"}]}]},
        **extra,
    }


def write_lines(path: Path, items: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(item) + b"\n" for item in items))
    return path


def test_a_good_file_is_one_job_of_all_its_records(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [nova(n) for n in range(250)])

    plan = plan_submission([source], Family.NOVA, SubmitLimits())

    assert [(job.start, job.end) for job in plan.jobs] == [(0, 250)]
    assert plan.records == 250
    assert plan.jobs[0].size == plan.size == source.stat().st_size
    assert plan.assigned_ids == {}


def test_a_bad_line_37_is_named_and_nothing_is_planned(tmp_path: Path) -> None:
    items: list[Any] = [nova(n) for n in range(250)]
    items[36] = {"recordId": "x", "prompt": "no modelInput"}
    source = write_lines(tmp_path / "in.jsonl", items)

    with pytest.raises(InputError, match=rf"^{source} line 37: no modelInput$"):
        plan_submission([source], Family.NOVA, SubmitLimits())


def test_120_000_records_become_three_even_jobs(tmp_path: Path) -> None:
    line = orjson.dumps({"modelInput": {"inputText": "hello"}}) + b"\n"
    source = tmp_path / "big.jsonl"
    source.write_bytes(line * 120_000)

    plan = plan_submission([source], Family.TITAN_EMBED, SubmitLimits())

    assert [job.records for job in plan.jobs] == [40_000, 40_000, 40_000]
    assert plan.jobs[1].start == 40_000
    # Every record had no id: each got one of 11 characters, all different.
    ids = list(plan.assigned_ids.values())
    assert len(set(ids)) == 120_000
    assert {len(i) for i in ids} == {11}


def test_jobs_are_cut_where_their_bytes_would_pass_the_limit(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [nova(n) for n in range(300)])
    line_bytes = source.stat().st_size // 300

    limits = SubmitLimits(min_records=10, max_job_bytes=line_bytes * 120)
    plan = plan_submission([source], Family.NOVA, limits)

    assert [job.records for job in plan.jobs] == [100, 100, 100]
    assert all(job.size <= limits.max_job_bytes for job in plan.jobs)


def test_too_few_records_for_a_job_are_refused(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [nova(n) for n in range(99)])

    with pytest.raises(InputError, match="the input has 99 records, fewer than the 100"):
        plan_submission([source], Family.NOVA, SubmitLimits())


def test_a_record_id_on_two_lines_names_both(tmp_path: Path) -> None:
    first = write_lines(tmp_path / "a.jsonl", [nova(n) for n in range(60)])
    second = write_lines(tmp_path / "b.jsonl", [nova(n + 60) for n in range(59)] + [nova(7)])

    with pytest.raises(InputError) as refused:
        plan_submission([first, second], Family.NOVA, SubmitLimits())

    assert str(refused.value) == (
        f"{second} line 60: recordId 'rec-00007' is also on {first} line 8;"
        " each record needs its own"
    )


def test_assigned_ids_skip_the_ids_lines_already_have(tmp_path: Path) -> None:
    items: list[Any] = [nova(n) for n in range(100)]
    items[0]["recordId"] = "R0000000001"
    del items[5]["recordId"]
    source = write_lines(tmp_path / "in.jsonl", items)

    plan = plan_submission([source], Family.NOVA, SubmitLimits())

    assert plan.assigned_ids == {5: "R0000000002"}


def test_line_numbers_count_blank_lines_a_bom_and_crlf(tmp_path: Path) -> None:
    good = orjson.dumps(nova(0))
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + good + b"\r\n\n" + good.replace(b"rec", b"x") + b"\r\n{")

    with pytest.raises(InputError, match=rf"^{source} line 4: not valid JSON"):
        plan_submission([source], Family.NOVA, SubmitLimits(min_records=1))


def test_an_overlong_line_is_refused_before_it_is_held_whole(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps(nova(0)) + b"\n" + b"x" * (3 * 1024 * 1024))

    with pytest.raises(InputError, match=rf"^{source} line 2: over the 1048576 limit"):
        plan_submission([source], Family.NOVA, SubmitLimits(min_records=1))


def test_a_fifo_is_refused_without_waiting_on_it(tmp_path: Path) -> None:
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)

    with pytest.raises(InputError, match=rf"^{fifo}: not a regular file"):
        plan_submission([fifo], Family.NOVA, SubmitLimits())


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file or directory"):
        plan_submission([tmp_path / "nope.jsonl"], Family.NOVA, SubmitLimits())


@pytest.mark.parametrize(
    ("family", "model_input", "problem"),
    [
        (Family.NOVA, {"messages": []}, "needs messages, a non-empty list"),
        (Family.NOVA, {"messages": [{"role": "system", "content": []}]}, 'role "system"'),
        (Family.CONVERSE, {"messages": [{"role": "user"}]}, "messages[0] has no content"),
        (Family.CLAUDE, {"messages": [{"role": "user", "content": "hi"}]}, "no anthropic_version"),
        (Family.TITAN_EMBED, {"inputText": 5}, "needs inputText as a non-empty string"),
        (Family.LLAMA, {"messages": []}, "needs prompt as a non-empty string for Meta Llama"),
    ],
)
def test_each_family_s_input_shape_is_checked(
    family: Family, model_input: dict[str, Any], problem: str
) -> None:
    raw = orjson.dumps({"recordId": "r1", "modelInput": model_input})

    with pytest.raises(InputError, match=f"^in.jsonl line 3: modelInput .*{re.escape(problem)}"):
        check_line(raw, "in.jsonl line 3", family, 1024 * 1024)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b'{"recordId": 7, "modelInput": {}}', "recordId must be a non-empty string, not 7"),
        (b'{"recordId": " ", "modelInput": {}}', "recordId must be a non-empty string"),
        (b'{"recordId": "a", "modelInput": "x"}', 'modelInput must be a JSON object, not "x"'),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"recordId": "a\\u0000b", "modelInput": {}}', "recordId holds a NUL character"),
        (b'{"recordId": "' + b"x" * 1025 + b'", "modelInput": {}}', "recordId is over 1024 bytes"),
    ],
)
def test_lines_that_are_not_records_are_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(InputError, match=f"^f line 1: {problem}"):
        check_line(raw, "f line 1", Family.NOVA, 4096)
