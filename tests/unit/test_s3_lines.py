"""aws/s3.py: the pure LineSplitter and S3Uri.parse."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from batch_poller.aws.s3 import LineSplitter, OverlongLine, S3Uri

Item = tuple[int, bytes | OverlongLine]

SAMPLE = b'{"recordId":"a"}\n\n   \n{"recordId":"b"}\r\nxyz\n\nlast'
EXPECTED: list[Item] = [
    (1, b'{"recordId":"a"}'),
    (4, b'{"recordId":"b"}\r'),
    (5, b"xyz"),
    (7, b"last"),
]


def split(chunks: Iterable[bytes], limit: int) -> list[Item]:
    splitter = LineSplitter(limit)
    out: list[Item] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
        assert len(splitter._pending) <= limit
    out.extend(splitter.finish())
    return out


def every_split(data: bytes) -> Iterable[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]
        for j in range(i, len(data) + 1):
            yield [data[:i], data[i:j], data[j:]]


def test_lines_are_the_same_however_the_bytes_are_split() -> None:
    for chunks in every_split(SAMPLE):
        assert split(chunks, 1024) == EXPECTED, chunks


def test_trailing_newline_and_blank_lines() -> None:
    assert split([b"a\n\n\nb\n"], 1024) == [(1, b"a"), (4, b"b")]
    assert split([b"\n\n"], 1024) == []
    assert split([], 1024) == []


def test_last_line_without_newline_comes_from_finish() -> None:
    splitter = LineSplitter(1024)
    assert list(splitter.feed(b"one\ntwo")) == [(1, b"one")]
    assert list(splitter.finish()) == [(2, b"two")]


def test_line_of_exactly_the_limit_is_kept() -> None:
    for chunks in every_split(b"12345678\n123456789\n"):
        result = split(chunks, 8)
        assert result[0] == (1, b"12345678")
        number, long = result[1]
        assert number == 2 and isinstance(long, OverlongLine) and long.length == 9


LONG = b'{"recordId":"big"' + b"x" * 40 + b"}"
WITH_LONG = b"first\n" + LONG + b"\nafter\n\n" + LONG + b"\nend"


def test_overlong_lines_however_the_bytes_are_split() -> None:
    for chunks in every_split(WITH_LONG):
        result = split(chunks, 16)
        assert [n for n, _ in result] == [1, 2, 3, 5, 6]
        assert (result[0], result[2], result[4]) == ((1, b"first"), (3, b"after"), (6, b"end"))
        for _, item in (result[1], result[3]):
            assert isinstance(item, OverlongLine)
            assert item.length == len(LONG)
            assert item.prefix and LONG.startswith(item.prefix)


@pytest.mark.parametrize("chunk_size", [64 * 1024, 10 * 1024 * 1024 + 10])
def test_ten_megabyte_line(chunk_size: int) -> None:
    big = b"y" * (10 * 1024 * 1024)
    data = b"before\n" + big + b"\nafter\n"
    chunks = (data[i : i + chunk_size] for i in range(0, len(data), chunk_size))
    splitter = LineSplitter(1024)
    result: list[Item] = []
    for chunk in chunks:
        result.extend(splitter.feed(chunk))
        assert len(splitter._pending) <= 1024
    result.extend(splitter.finish())
    assert result[0] == (1, b"before")
    assert result[2] == (3, b"after")
    number, item = result[1]
    assert number == 2 and isinstance(item, OverlongLine)
    assert item.length == len(big)
    assert 0 < len(item.prefix) <= 4096 and big.startswith(item.prefix)


def test_overlong_last_line_without_newline() -> None:
    splitter = LineSplitter(1024)
    assert list(splitter.feed(b"ok\n" + b"z" * 5000)) == [(1, b"ok")]
    [(number, item)] = list(splitter.finish())
    assert number == 2 and isinstance(item, OverlongLine) and item.length == 5000


def test_s3_uri_parse() -> None:
    assert S3Uri.parse("s3://bucket/a/b/") == S3Uri("bucket", "a/b/")
    assert S3Uri.parse("s3://bucket") == S3Uri("bucket", "")
    assert str(S3Uri("bucket", "a/b")) == "s3://bucket/a/b"


@pytest.mark.parametrize("uri", ["https://bucket/key", "bucket/key", "S3://bucket/key", ""])
def test_s3_uri_parse_refuses_other_schemes(uri: str) -> None:
    with pytest.raises(ValueError, match="not an s3:// URI"):
        S3Uri.parse(uri)


@pytest.mark.parametrize("uri", ["s3://", "s3:///key"])
def test_s3_uri_parse_refuses_missing_bucket(uri: str) -> None:
    with pytest.raises(ValueError, match="no bucket"):
        S3Uri.parse(uri)
