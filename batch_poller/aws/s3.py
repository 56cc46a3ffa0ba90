"""S3 as the daemon needs it: list a prefix, stream an object's lines, delete keys in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from batch_poller.aws.errors import AwsError, RetryPolicy, call

DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, key: str) -> S3Uri:
        return S3Uri(self.bucket, key)

    def as_folder(self) -> S3Uri:
        """The same place read as a folder: its key ends at a '/' (the bucket root stays)."""
        if not self.key or self.key.endswith("/"):
            return self
        return self.child(self.key + "/")


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int


@dataclass(frozen=True)
class OverlongLine:
    """A line longer than the limit: its first bytes and its length, not the line itself."""

    prefix: bytes
    length: int


class S3:
    def __init__(self, client: Any, retry: RetryPolicy) -> None:
        self._client = client
        self._retry = retry

    async def list_objects(self, prefix: S3Uri) -> AsyncIterator[S3Object]:
        params: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key}
        while True:
            page = await self._retry.run(
                "ListObjectsV2", lambda: self._client.list_objects_v2(**params)
            )
            for item in page.get("Contents", []):
                yield S3Object(item["Key"], int(item.get("Size", 0)))
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def read_bytes(self, uri: S3Uri, limit: int = 16 * 1024 * 1024) -> bytes | None:
        """A small object's content, or None when it does not exist."""
        try:
            response = await self._retry.run(
                "GetObject", lambda: self._client.get_object(Bucket=uri.bucket, Key=uri.key)
            )
        except AwsError as error:
            if error.not_found:
                return None
            raise
        body = response["Body"]
        expected = response.get("ContentLength")
        if expected is not None and expected > limit:
            raise ValueError(f"{uri} is larger than {limit} bytes")
        async with body:  # closes the connection; reads go through botocore's StreamingBody
            # Read to the end: only then does the body check what arrived against its length.
            data: bytes = await call("GetObject", lambda: body.read())
        if expected is not None and len(data) != expected:
            # A connection cut mid-object: a network error, not a broken object.
            raise AwsError(
                "GetObject",
                "IncompleteRead",
                f"{uri}: {len(data)} of {expected} bytes arrived",
                transient=True,
            )
        if len(data) > limit:
            raise ValueError(f"{uri} is larger than {limit} bytes")
        return data

    async def lines(
        self, uri: S3Uri, max_line_bytes: int
    ) -> AsyncIterator[tuple[int, bytes | OverlongLine]]:
        """(line number, line) for every non-empty line, streamed in bounded chunks."""
        async for lines in self.line_chunks(uri, max_line_bytes):
            for item in lines:
                yield item

    async def line_chunks(
        self, uri: S3Uri, max_line_bytes: int
    ) -> AsyncIterator[list[tuple[int, bytes | OverlongLine]]]:
        """The same lines, a list for each chunk read: a step of the caller's loop per chunk,
        not per line, where millions of lines go through."""
        response = await self._retry.run(
            "GetObject", lambda: self._client.get_object(Bucket=uri.bucket, Key=uri.key)
        )
        splitter = LineSplitter(max_line_bytes)
        body = response["Body"]
        async with body:
            while chunk := await call("GetObject", lambda: body.read(CHUNK_BYTES)):
                yield list(splitter.feed(chunk))
        yield list(splitter.finish())

    async def delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        """Deletes up to 1,000 keys in one request; any key it could not delete is an error."""
        if len(keys) > DELETE_BATCH:
            raise ValueError(f"at most {DELETE_BATCH} keys per DeleteObjects, got {len(keys)}")
        response = await self._retry.run(
            "DeleteObjects",
            lambda: self._client.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            ),
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise AwsError(
                "DeleteObjects",
                str(first.get("Code")),
                f"{len(errors)} keys not deleted, first {first.get('Key')}: {first.get('Message')}",
                transient=False,
            )


class LineSplitter:
    """Splits a byte stream into numbered lines, holding at most one line of max_line_bytes.

    A longer line is never held whole: it comes out as an OverlongLine with its first bytes.
    Blank lines are counted but not returned.
    """

    PREFIX_BYTES = 4096

    def __init__(self, max_line_bytes: int) -> None:
        self.limit = max_line_bytes
        self.number = 0
        self._pending = bytearray()
        self._overlong: OverlongLine | None = None

    def feed(self, chunk: bytes) -> Iterator[tuple[int, bytes | OverlongLine]]:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if not self._pending and self._overlong is None and end - start <= self.limit:
                # The common case: a whole line inside one chunk, taken without copying twice.
                self.number += 1
                line = chunk[start:end]
                if line.strip():
                    yield self.number, line
            else:
                yield from self._end_line(chunk[start:end])
            start = end + 1
        self._extend(chunk[start:])

    def finish(self) -> Iterator[tuple[int, bytes | OverlongLine]]:
        if self._pending or self._overlong is not None:
            yield from self._end_line(b"")

    def _extend(self, piece: bytes) -> None:
        if self._overlong is not None:
            # The prefix grows to its full size whatever the chunk boundaries were.
            prefix = self._overlong.prefix
            if len(prefix) < self.PREFIX_BYTES:
                prefix += piece[: self.PREFIX_BYTES - len(prefix)]
            self._overlong = OverlongLine(prefix, self._overlong.length + len(piece))
            return
        self._pending += piece
        if len(self._pending) > self.limit:
            self._overlong = OverlongLine(
                bytes(self._pending[: self.PREFIX_BYTES]), len(self._pending)
            )
            self._pending.clear()

    def _end_line(self, piece: bytes) -> Iterator[tuple[int, bytes | OverlongLine]]:
        self._extend(piece)
        self.number += 1
        if self._overlong is not None:
            overlong, self._overlong = self._overlong, None
            yield self.number, overlong
            return
        line = bytes(self._pending)
        self._pending.clear()
        if line.strip():
            yield self.number, line
