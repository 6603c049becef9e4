"""Lines of an S3 object's stream, read a chunk at a time with a bound on a line's length,
and the hour partitions a window lists."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from bot.domain.monitoring.records import S3Prefix
from integrations.aws import objects
from integrations.aws.objects import hour_prefixes, split_lines


def test_lines_cross_chunk_boundaries(monkeypatch: object) -> None:
    data = b"".join(b"line-%d\n" % i for i in range(1000)) + b"tail"
    lines = list(split_lines(io.BytesIO(data)))
    assert lines[0] == b"line-0" and lines[-2] == b"line-999" and lines[-1] == b"tail"
    assert len(lines) == 1001


def test_an_overlong_line_is_cut_once_and_the_next_line_is_read() -> None:
    long = b"x" * (3 * objects.CHUNK)
    lines = list(split_lines(io.BytesIO(b"a\n" + long + b"\nb\n"), max_line=100))
    assert lines == [b"a", b"x" * 101, b"b"]


def test_a_window_lists_every_hour_it_touches() -> None:
    where = S3Prefix("logs", "fraud/")
    start = datetime(2025, 6, 1, 22, 55, tzinfo=UTC)
    end = datetime(2025, 6, 2, 0, 10, tzinfo=UTC)
    assert hour_prefixes(where, start, end) == [
        "fraud/2025/06/01/22/",
        "fraud/2025/06/01/23/",
        "fraud/2025/06/02/00/",
    ]
