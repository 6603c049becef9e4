"""boto3, made async once here: S3 objects (run metrics). ECS, ELBv2 and CloudWatch come later."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bot.errors import ExternalError

MISSING = ("NoSuchKey", "404", "NoSuchBucket")


def client_config(timeout: float, attempts: int = 3) -> Config:
    """Timeouts on every call, and botocore's bounded standard retries for transient errors."""
    return Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )


def aws_client(service: str, *, region: str, endpoint_url: str | None, timeout: float) -> Any:
    session = boto3.session.Session()
    return session.client(
        service, region_name=region, endpoint_url=endpoint_url, config=client_config(timeout)
    )


class S3Objects:
    """Reads small objects such as a run's metrics.json."""

    def __init__(self, client: Any, *, max_bytes: int = 5 * 1024 * 1024) -> None:
        self.client = client
        self.max_bytes = max_bytes

    async def read(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        return await asyncio.to_thread(self.read_sync, bucket, key)

    def read_sync(self, bucket: str, key: str) -> bytes | None:
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
