"""What the monitoring checks need from outside (bot/ports.py style); integrations implement it."""

from __future__ import annotations

from typing import Protocol

from bot.domain.monitoring.records import S3Prefix, Window
from bot.domain.monitoring.reference import Reference
from bot.domain.monitoring.scan import WindowScan


class PredictionScans(Protocol):
    """Prediction logs and labels, implemented by integrations.aws.predictions.PredictionLogs."""

    async def scan(
        self,
        reference: Reference,
        predictions: S3Prefix,
        window: Window,
        labels: S3Prefix | None = None,
        labels_window: Window | None = None,
    ) -> WindowScan:
        """The window's predictions counted into the reference's bins, joined with labels."""
        ...


class FileShares(Protocol):
    """Files shared into channels, implemented by integrations.slack_files.SlackFiles."""

    async def upload_file(
        self,
        channel: str,
        filename: str,
        data: bytes,
        title: str,
        initial_comment: str,
        thread_ts: str | None = None,
    ) -> str:
        """Shares ``data`` in ``channel``; the file's id."""
        ...

    async def find_file(self, channel: str, filename: str, *, oldest: float) -> str | None:
        """The id of a file named ``filename`` already shared in ``channel`` since ``oldest``."""
        ...
