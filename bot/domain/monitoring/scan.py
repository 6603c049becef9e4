"""What one read of a monitoring window found: counts in the reference's bins, the join with
labels, and what could not be used. Built by integrations/aws/predictions.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.monitoring.labels import Joined, LabelSample
from bot.domain.monitoring.records import Skipped
from bot.domain.monitoring.window import WindowCounts


@dataclass
class WindowScan:
    counts: WindowCounts
    joined: Joined = field(default_factory=Joined)
    labels: LabelSample | None = None
    objects: int = 0
    records: int = 0  # in the window and well formed
    outside: int = 0  # well formed, but another window's
    skipped: Skipped = field(default_factory=Skipped)
