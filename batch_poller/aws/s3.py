"""S3 as the daemon needs it: list a prefix, stream an object's lines, upload an object in parts,
delete keys in batches."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_poller.aws.errors import AwsError, RetryPolicy, call

DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
CHUNK_BYTES = 256 * 1024
# S3's smallest part but the last is 5 MiB; larger parts are fewer requests.
PART_BYTES = 8 * 1024 * 1024


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

    async def download(self, uri: S3Uri, path: Path) -> int:
        """Copies an object into a local file a chunk at a time; returns its size. AwsError
        (not_found for a missing object) when it cannot."""
        response = await self._retry.run(
            "GetObject", lambda: self._client.get_object(Bucket=uri.bucket, Key=uri.key)
        )
        size = 0
        body = response["Body"]
        async with body:
            with path.open("wb") as out:
                while chunk := await call("GetObject", lambda: body.read(CHUNK_BYTES)):
                    out.write(chunk)
                    size += len(chunk)
        expected = response.get("ContentLength")
        if expected is not None and size != expected:
            raise AwsError(
                "GetObject", "IncompleteRead", f"{uri}: {size} of {expected} bytes", transient=True
            )
        return size

    async def upload(self, uri: S3Uri, parts: AsyncIterator[bytes]) -> int:
        """Writes an object from pieces as they come, never the whole in memory: one
        PutObject when it is small, else a multipart upload (aborted if anything fails, so no
        half-written parts are left to bill). Returns its size."""
        pending = b""
        size = 0
        upload_id: str | None = None
        done: list[dict[str, Any]] = []
        try:
            async for piece in parts:
                pending += piece
                size += len(piece)
                if len(pending) >= PART_BYTES:
                    if upload_id is None:
                        upload_id = await self._start_upload(uri)
                    done.append(await self._upload_part(uri, upload_id, len(done) + 1, pending))
                    pending = b""
            if upload_id is None:
                await self._retry.run(
                    "PutObject",
                    lambda: self._client.put_object(Bucket=uri.bucket, Key=uri.key, Body=pending),
                )
                return size
            if pending:
                done.append(await self._upload_part(uri, upload_id, len(done) + 1, pending))
            await self._retry.run(
                "CompleteMultipartUpload",
                lambda: self._client.complete_multipart_upload(
                    Bucket=uri.bucket,
                    Key=uri.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": done},
                ),
            )
            return size
        except BaseException:
            if upload_id is not None:
                await self._abort_upload(uri, upload_id)
            raise

    async def abort_unfinished_uploads(self, uri: S3Uri) -> int:
        """Aborts the multipart uploads of this key left unfinished (their process killed):
        their parts are billed until then. Returns how many."""
        response = await self._retry.run(
            "ListMultipartUploads",
            lambda: self._client.list_multipart_uploads(Bucket=uri.bucket, Prefix=uri.key),
        )
        unfinished = [u for u in response.get("Uploads", []) if u.get("Key") == uri.key]
        for upload in unfinished:
            await self._abort_upload(uri, str(upload["UploadId"]))
        return len(unfinished)

    async def _start_upload(self, uri: S3Uri) -> str:
        response = await self._retry.run(
            "CreateMultipartUpload",
            lambda: self._client.create_multipart_upload(Bucket=uri.bucket, Key=uri.key),
        )
        return str(response["UploadId"])

    async def _upload_part(
        self, uri: S3Uri, upload_id: str, number: int, data: bytes
    ) -> dict[str, Any]:
        response = await self._retry.run(
            "UploadPart",
            lambda: self._client.upload_part(
                Bucket=uri.bucket, Key=uri.key, UploadId=upload_id, PartNumber=number, Body=data
            ),
        )
        return {"ETag": response["ETag"], "PartNumber": number}

    async def _abort_upload(self, uri: S3Uri, upload_id: str) -> None:
        with contextlib.suppress(AwsError):
            await self._retry.run(
                "AbortMultipartUpload",
                lambda: self._client.abort_multipart_upload(
                    Bucket=uri.bucket, Key=uri.key, UploadId=upload_id
                ),
            )

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
