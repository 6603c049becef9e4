"""boto3, made async once here: S3 objects (run metrics). ECS, ELBv2 and CloudWatch come later."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.errors import ExternalError
from integrations.aws.sessions import new_session

if TYPE_CHECKING:
    from botocore.config import Config

MISSING = ("NoSuchKey", "404", "NoSuchBucket")


def client_config(timeout: float, attempts: int = 3) -> Config:
    """Timeouts on every call, and botocore's bounded standard retries for transient errors."""
    from botocore.config import Config  # deferred: botocore is slow to import, used late

    return Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )


class AwsClients:
    """Every AWS client of the bot from ONE boto3 Session (a Session each costs ~10 MB), each
    client built on its first call: a bot that never deploys never loads boto3's models."""

    def __init__(self, *, region: str, endpoint_url: str | None, timeout: float) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self._session: Any = None
        self._lock = threading.Lock()  # clients are first used from worker threads

    def client(self, service: str) -> Any:
        return LazyClient(lambda: self._build(service), region=self.region)

    def _build(self, service: str) -> Any:
        with self._lock:
            if self._session is None:
                self._session = new_session()  # boto3 and its models load only now
            return self._session.client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=client_config(self.timeout),
            )


class LazyClient:
    """Stands for a boto3 client that is built when first used. Its ``meta.region_name`` is
    known without building it (adapters read it when they are wired)."""

    def __init__(self, build: Callable[[], Any], *, region: str | None = None) -> None:
        self._build = build
        self._client: Any = None
        self._lock = threading.Lock()
        if region:
            self.meta = LazyMeta(self, region)

    def built(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._build()
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.built(), name)


class LazyMeta:
    """A client's ``meta``: the region as configured, anything else from the built client."""

    def __init__(self, client: LazyClient, region: str) -> None:
        self._client = client
        self.region_name = region

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.built().meta, name)


def aws_client(service: str, *, region: str, endpoint_url: str | None, timeout: float) -> Any:
    """One client on its own (tests and tools); the bot shares one ``AwsClients``."""
    return AwsClients(region=region, endpoint_url=endpoint_url, timeout=timeout).client(service)


class S3Objects:
    """Reads small objects such as a run's metrics.json."""

    def __init__(self, client: Any, *, max_bytes: int = 5 * 1024 * 1024) -> None:
        self.client = client
        self.max_bytes = max_bytes

    async def read(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        return await asyncio.to_thread(self.read_sync, bucket, key)

    def read_sync(self, bucket: str, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError  # loaded by the client

        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
            body: bytes = response["Body"].read(self.max_bytes + 1)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise ExternalError(
                f"S3 refused s3://{bucket}/{key}: {exc.response.get('Error', {}).get('Code')}"
            ) from None
        except BotoCoreError as exc:
            raise ExternalError(
                f"S3 did not answer for s3://{bucket}/{key}: {type(exc).__name__}"
            ) from None
        if len(body) > self.max_bytes:
            raise ExternalError(f"s3://{bucket}/{key} is larger than {self.max_bytes} bytes")
        return body
