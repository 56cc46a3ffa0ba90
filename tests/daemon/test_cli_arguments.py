"""Arguments the command line refuses before doing anything: one line, a usage error (exit 2),
never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import run_command


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("jobs", "--limit", "9" * 30), "is not from 1 to 100,000"),
        (("groups", "--limit", "-1"), "is not from 1 to 100,000"),
        (("hooks", "failed", "--limit", "many"), "'many' is not a whole number"),
    ],
)
def test_a_limit_out_of_bounds_is_a_usage_error(args: tuple[str, ...], words: str) -> None:
    result = run_command(*args)

    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_an_argument_that_is_not_utf8_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batch_poller", "show", b"a\xffb"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr
