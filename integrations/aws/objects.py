"""S3 objects under a prefix for a time window, and their lines streamed (plain or gzip):
memory holds one chunk and one line, never an object."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from bot.domain.monitoring.records import MAX_LINE_BYTES, S3Prefix
from bot.errors import ExternalError, NotFound
from integrations.aws.sessions import new_session

CHUNK = 1024 * 1024
HOUR = timedelta(hours=1)
MISSING = ("NoSuchKey", "404")
PAGE = 1000


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def hour_prefixes(where: S3Prefix, start: datetime, end: datetime) -> list[str]:
    """``<prefix>YYYY/MM/DD/HH/`` (UTC, Firehose's default layout) for every hour that
    overlaps [start, end]."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    prefixes = []
    while hour <= end.astimezone(UTC):
        prefixes.append(f"{where.prefix}{hour:%Y/%m/%d/%H}/")
        hour += HOUR
    return prefixes


def split_lines(stream: Readable, max_line: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Lines of a byte stream, read a chunk at a time. A line longer than ``max_line`` is
    yielded cut to ``max_line + 1`` bytes (so the reader can tell), its rest skipped."""
    pending = b""
    overlong = False
    while chunk := stream.read(CHUNK):
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        for part in parts:
            if overlong:
                overlong = False
                continue
            yield part
        if len(pending) > max_line:
            if not overlong:
                yield pending[: max_line + 1]
            overlong, pending = True, b""
    if pending and not overlong:
        yield pending


@dataclass(frozen=True)
class Connect:
    """Builds, in another process, an S3 client like a given one (boto3 clients do not cross
    processes): the same region, endpoint and config (timeouts, retries), and the credentials
    the client was made with, frozen, or else the default chain (environment, role)."""

    region: str | None
    endpoint_url: str | None
    config: Any
    credentials: tuple[str, str, str | None] | None = None

    @classmethod
    def like(cls, client: Any) -> Connect:
        meta = client.meta
        signer = getattr(client, "_request_signer", None)  # botocore keeps them there
        found = getattr(signer, "_credentials", None)
        frozen = found.get_frozen_credentials() if found is not None else None
        credentials = (frozen.access_key, frozen.secret_key, frozen.token) if frozen else None
        return cls(meta.region_name, meta.endpoint_url, meta.config, credentials)

    def __call__(self) -> Any:
        keys = self.credentials or (None, None, None)
        return new_session().client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=self.config,
            aws_access_key_id=keys[0],
            aws_secret_access_key=keys[1],
            aws_session_token=keys[2],
        )

    def __repr__(self) -> str:  # never the keys
        return f"Connect(region={self.region!r}, endpoint_url={self.endpoint_url!r})"


class ObjectLines:
    """Lists and streams S3 objects through one boto3 client (timeouts and retries in its
    config, see ``client_config``)."""

    def __init__(self, client: Any, *, max_line: int = MAX_LINE_BYTES) -> None:
        self.client = client
        self.max_line = max_line

    def keys(
        self, where: S3Prefix, start: datetime, end: datetime, *, partitioned: bool = True
    ) -> Iterator[str]:
        """Keys that may hold records of [start, end]: the hour partitions' objects, or (flat
        layout) every object under the prefix last modified in that span."""
        yield from (key for key, _ in self.sized(where, start, end, partitioned=partitioned))

    def sized(
        self, where: S3Prefix, start: datetime, end: datetime, *, partitioned: bool = True
    ) -> Iterator[tuple[str, int]]:
        """The same keys as ``keys``, each with its size in bytes (as stored)."""
        if partitioned:
            for prefix in hour_prefixes(where, start, end):
                yield from ((o["Key"], o["Size"]) for o in self._listing(where.bucket, prefix))
            return
        for item in self._listing(where.bucket, where.prefix):
            if start <= item["LastModified"] <= end:
                yield item["Key"], item["Size"]

    def _listing(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE}
        while True:
            page = self._call(f"s3://{bucket}/{prefix}", self.client.list_objects_v2, **kwargs)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def lines(self, bucket: str, key: str) -> Iterator[bytes]:
        """The object's lines as they arrive; gzip (by ``.gz`` or Content-Encoding) inflated."""
        response = self._call(
            f"s3://{bucket}/{key}", self.client.get_object, Bucket=bucket, Key=key
        )
        body = response["Body"]
        try:
            zipped = key.endswith(".gz") or response.get("ContentEncoding") == "gzip"
            stream: Readable = gzip.GzipFile(fileobj=body, mode="rb") if zipped else body
            yield from split_lines(stream, self.max_line)
        finally:
            body.close()

    @staticmethod
    def _call(what: str, call: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(call(**kwargs))
        except ClientError as exc:
            if code(exc) in MISSING:
                raise NotFound(f"S3 has no {what} ({code(exc)})") from None
            raise ExternalError(f"S3 refused {what}: {code(exc)}") from None
        except BotoCoreError as exc:
            raise ExternalError(f"S3 did not answer for {what}: {type(exc).__name__}") from None


# A broken stream (botocore wraps urllib3's read errors): read the object again.
STREAM_ERRORS = (BotoCoreError,)
# Read to the end, but not valid gzip: the object is corrupt, reading it again will not help.
CORRUPT = (gzip.BadGzipFile, EOFError, zlib.error)
