"""aws/s3.LineSplitter against a reference splitter, over any bytes cut into any chunks.

The reference holds the whole stream and splits it at once, so it is obviously right; the
splitter must give the same numbered lines while never holding more than one line of the
limit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from hypothesis import example, given, settings
from hypothesis import strategies as st

from batch_poller.aws.s3 import LineSplitter, OverlongLine

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Overlong:
    """What the reference expects of a line over the limit."""

    prefix: bytes
    length: int


Expected = tuple[int, bytes | Overlong]


def reference_lines(data: bytes, limit: int, prefix_bytes: int) -> list[Expected]:
    """Every line, numbered from 1 counting blank ones; blank lines left out; a line over the
    limit as its length and first bytes. A last line without a newline is still a line."""
    lines: list[Expected] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if len(line) > limit:
            lines.append((number, Overlong(line[:prefix_bytes], len(line))))
        elif line.strip():
            lines.append((number, line))
    return lines


def split(chunks: list[bytes], limit: int, prefix_bytes: int) -> list[Expected]:
    splitter = LineSplitter(limit)
    splitter.PREFIX_BYTES = prefix_bytes
    out: list[Expected] = []

    def take(items: Iterable[tuple[int, bytes | OverlongLine]]) -> None:
        for number, item in items:
            if isinstance(item, OverlongLine):
                out.append((number, Overlong(item.prefix, item.length)))
            else:
                out.append((number, bytes(item)))

    for chunk in chunks:
        take(splitter.feed(chunk))
        # The memory bound: never more than one line of the limit held.
        assert len(splitter._pending) <= limit
    take(splitter.finish())
    return out


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """The bytes in chunks at the given offsets; repeated offsets give empty chunks."""
    edges = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


# Bytes that matter to a line reader: newline, CR, blanks, NUL, a BOM's bytes, bytes that are
# never valid UTF-8, a lead byte without its continuation, and JSON's punctuation.
INTERESTING = st.sampled_from(
    [
        *(b"\n", b"\r", b" ", b"\t", b"\x00", b"\x0b"),
        *(b"\xef", b"\xbb", b"\xbf", b"\xff", b"\xc3", b"\xe2\x80\xa8"),
        *(b"a", b"{", b"}", b'"', b"\\"),
    ]
)
LINE = st.one_of(
    st.lists(INTERESTING, max_size=12).map(b"".join),
    st.binary(max_size=24).map(lambda b: b.replace(b"\n", b"")),
    # A long run, to cross the limit and the prefix size in many chunks.
    st.tuples(st.binary(min_size=1, max_size=3), st.integers(1, 40)).map(lambda t: t[0] * t[1]),
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(LINE, max_size=10))
    ends = draw(st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines)))
    data = b"".join(line.replace(b"\n", b"") + end for line, end in zip(lines, ends, strict=False))
    if draw(st.booleans()):
        data = data.removesuffix(b"\n")  # the last line without its newline
    if draw(st.booleans()):
        data = BOM + data
    return data


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(st.one_of(streams(), st.binary(max_size=200)))
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, cut(data, cuts)


@settings(max_examples=400, deadline=None)
@given(chunked(), st.integers(1, 48), st.integers(1, 16))
@example((b"ab\n\n\ncd", [b"a", b"b\n", b"", b"\n\ncd"]), 1, 1)
@example((BOM + b"x\r\n", [BOM[:1], BOM[1:], b"x\r\n"]), 8, 4)
def test_any_chunking_gives_the_reference_lines(
    stream: tuple[bytes, list[bytes]], limit: int, prefix_bytes: int
) -> None:
    data, chunks = stream

    assert split(chunks, limit, prefix_bytes) == reference_lines(data, limit, prefix_bytes)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=8), st.integers(1, 3000), st.lists(st.integers(0, 20_000)))
def test_the_prefix_of_a_long_line_is_its_first_bytes_at_the_real_size(
    pattern: bytes, repeat: int, cuts: list[int]
) -> None:
    line = (pattern * repeat).replace(b"\n", b"n")
    data = b"before\n" + line + b"\nafter"

    lines = split(cut(data, cuts), 1024, LineSplitter.PREFIX_BYTES)

    assert lines == reference_lines(data, 1024, LineSplitter.PREFIX_BYTES)


@given(st.lists(st.sampled_from([b"\n", b"\r\n", b" \n", b"\t\r\n"]), max_size=30))
def test_blank_lines_are_counted_but_not_returned(blanks: list[bytes]) -> None:
    data = b"".join(blanks) + b"x"

    assert split([data], 64, 16) == [(len(blanks) + 1, b"x")]


def test_a_bom_and_a_crlf_are_passed_through_as_bytes() -> None:
    # Reading JSON is the parser's job: the splitter changes no byte of a line.
    assert split([BOM + b"{}\r\n\x00\xff\r\n"], 64, 16) == [(1, BOM + b"{}\r"), (2, b"\x00\xff\r")]
