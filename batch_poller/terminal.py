"""How the command line shows jobs: a table that fits 80 columns (a job's name or id, a
status that is never cut, counts, relative times), and every column with `--wide`."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from batch_poller.rows import JobRow
from batch_poller.views import cleanup_state, job_document, records_shown

# A longer name is shown by the job's id instead: as unique, and 12 characters. With the
# widest cells of the other columns (RESULT_FETCH_FAILED, 49.9k/50.0k, <$0.0001, 59m ago),
# a row is then 80 characters at most.
_NAME_WIDTH = 15


_COLUMNS: tuple[tuple[str, Literal["left", "right"]], ...] = (
    ("status", "left"),
    ("records", "right"),
    ("errors", "right"),
    ("cost", "right"),
    ("cleanup", "left"),
    ("checked", "left"),
)


# What a terminal would act on instead of showing: C0 and C1 controls (escape sequences, a
# newline splitting a row, a carriage return hiding text), DEL, and the invisible characters
# that reorder or hide text (bidirectional overrides, zero-width characters, the BOM).
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def literal(value: object) -> Text:
    """A cell shown as it is: never read as rich markup, and every character that a terminal
    would act on (or hide) shown as its escape, `\\x1b`. Names and messages come from Bedrock
    and from whoever named the job."""
    text = "-" if value is None else str(value)
    return Text(_UNSHOWABLE.sub(lambda found: repr(found.group())[1:-1], text))


def ago(when: datetime | None, now: datetime, *, compact: bool = False) -> str:
    """`12 s ago`, `3 min ago`, `5 h ago`, `2 days ago`; `in 3 min` for a time to come.
    `compact` for a table's column: `12s ago`, `3m ago`, `5h ago`, `2d ago`."""
    if when is None:
        return "never"
    seconds = round((now - when).total_seconds())
    size = abs(seconds)
    units = ("s", "m", "h", "d") if compact else (" s", " min", " h", " days")
    if size < 90:
        span = f"{size}{units[0]}"
    elif size < 90 * 60:
        span = f"{round(size / 60)}{units[1]}"
    elif size < 48 * 3600:
        span = f"{round(size / 3600)}{units[2]}"
    else:
        span = f"{round(size / 86400)}{units[3]}"
    return f"{span} ago" if seconds >= 0 else f"in {span}"


def plain_time(when: datetime | None) -> str:
    """A time to the second, in UTC: `2026-11-29 21:13:54Z`."""
    if when is None:
        return "-"
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def money(cost: Decimal | None) -> str:
    """A cost with enough digits to be non-zero: $12.35, $0.0042, $0.000041 (two significant
    digits below a dollar)."""
    if cost is None:
        return "-"
    digits = 2 if cost == 0 or abs(cost) >= 1 else max(2, -cost.adjusted() + 1)
    shown = cost.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"${shown:,}"


def size(count: int | None) -> str:
    """Bytes in the units people read: 812 B, 88.7 kB, 1.2 MB, 3.0 GB."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def short_count(count: int | None) -> str:
    """812, 3.4k, 250k, 1.2M: a count in at most five characters, rounded down (49,999 is
    49.9k: a job one record short of done does not look done)."""
    if count is None:
        return "-"
    if count < 1000:
        return str(count)
    if count < 100_000:
        return f"{count // 100 / 10:.1f}k"
    if count < 1_000_000:
        return f"{count // 1000}k"
    return f"{count // 100_000 / 10:.1f}M"


def job_label(job: JobRow) -> str:
    """The job's name when it has one that fits and shows as itself, else its id: both are
    taken by `show`."""
    name = job.job_name
    if name and name.strip() and len(name) <= _NAME_WIDTH and not _UNSHOWABLE.search(name):
        return name
    return job.job_id


def compact_money(cost: Decimal | None) -> str:
    """A cost in at most 8 characters: $0.00041, $12.35, $1.2k; below $0.0001 `<$0.0001`."""
    if cost is not None and 0 < cost < Decimal("0.0001"):
        return "<$0.0001"
    if cost is not None and cost >= 1000:
        return f"${cost / 1000:.1f}k"
    return money(cost)


def add_literal_row(table: Table, *cells: object) -> None:
    table.add_row(*(literal(cell) for cell in cells))


def compact_table(title: str) -> Table:
    """A table without side borders, columns a space apart: the most a line can hold."""
    return Table(
        title=literal(title),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 0, 0, 0),
        title_justify="left",
    )


def jobs_table(jobs: Sequence[JobRow], now: datetime, *, title: str, wide: bool = False) -> Table:
    table = compact_table(title)
    if wide:
        return _wide_table(table, jobs)
    table.add_column("job", no_wrap=True, overflow="ellipsis", max_width=_NAME_WIDTH)
    for header, justify in _COLUMNS:
        table.add_column(header, justify=justify, no_wrap=True, min_width=len(header))
    for job in jobs:
        add_literal_row(
            table,
            job_label(job),
            job.status.value,
            records_shown(job, short_count),  # 49.9k/50.0k: 11 characters at most
            short_count(job.error_records),
            compact_money(job.cost),
            cleanup_state(job),
            ago(job.last_checked_at, now, compact=True),
        )
    return table


def _wide_table(table: Table, jobs: Sequence[JobRow]) -> Table:
    columns = (
        "job id",
        "name",
        "status",
        "bedrock",
        "records",
        "ok",
        "errors",
        "tokens in/out",
        "cost",
        "cleanup",
        "freed",
        "group",
        "submitted",
        "completed",
        "checked",
    )
    for column in columns:
        table.add_column(column, no_wrap=True)
    for job in jobs:
        add_literal_row(
            table,
            job.job_id,
            job.job_name or "-",
            job.status.value,
            job.bedrock_status.value if job.bedrock_status else "-",
            records_shown(job),
            _count(job.success_records),
            _count(job.error_records),
            f"{_count(job.input_tokens)}/{_count(job.output_tokens)}",
            money(job.cost),
            cleanup_state(job),
            "-" if job.bytes_freed is None else f"{job.bytes_freed:,} B",
            job.group_name or "-",
            plain_time(job.submitted_at),
            plain_time(job.completed_at),
            plain_time(job.last_checked_at),
        )
    return table


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def job_details(job: JobRow, now: datetime) -> Table:
    """`show`: every field of a job, times to the second with how long ago."""
    table = Table(show_header=False, title=literal(job.batch_job_arn), box=box.SIMPLE)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")  # a long ARN or message wraps, never cut
    for key, value in job_document(job).items():
        raw = getattr(job, key, None)
        if isinstance(raw, datetime):
            value = f"{plain_time(raw)} ({ago(raw, now)})"
        elif key == "cost":
            value = money(job.cost)
        add_literal_row(table, key, value)
    return table


def print_table(table: Table, *, wide: bool = False) -> None:
    """On the terminal's width; `wide` tables are never squeezed (a pipe is 80 columns)."""
    Console(width=10_000 if wide else None).print(table)


@contextlib.contextmanager
def waiting(message: str) -> Iterator[None]:
    """A spinner on stderr while a command waits on the network, when stderr is a terminal:
    a slow endpoint shows as a wait, not as a hang (retries are logged beside it)."""
    if not sys.stderr.isatty():
        yield
        return
    with Console(stderr=True).status(message):
        yield
