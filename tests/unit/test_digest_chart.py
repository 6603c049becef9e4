"""The daily digest chart: a valid PNG of bounded size, drifted features first, deploys inside
the period marked (and only those), and no display needed."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta

from bot.domain.monitoring.chart import (
    MAX_BARS,
    AccuracyPoint,
    DeployMark,
    DigestData,
    DriftBar,
    render_digest,
)

END = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature and its CRC."""
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    body = png[16 : 16 + length]
    (crc,) = struct.unpack(">I", png[16 + length : 20 + length])
    assert crc == zlib.crc32(kind + body)
    width, height = struct.unpack(">II", body[:8])
    return width, height


def digest(**overrides: object) -> DigestData:
    points = [
        AccuracyPoint(END - timedelta(hours=h), 0.95 - (0.08 if h < 10 else 0.0), 0.9, 0.97, 400)
        for h in range(24, -1, -2)
    ]
    values: dict[str, object] = {
        "model": "fraud",
        "env": "prod",
        "drift": [
            DriftBar("amount", 0.42, 0.1),
            DriftBar("country", 0.02, 0.1),
            DriftBar("age", 0.05, 0.1),
            DriftBar("prediction", 0.12, 0.1, drifted=False),
        ],
        "accuracy": points,
        "deploys": [
            DeployMark(END - timedelta(hours=11), 41),
            DeployMark(END - timedelta(hours=3), 42),
            DeployMark(END - timedelta(days=3), 40),  # before the period: not drawn
        ],
        "test_accuracy": 0.95,
    }
    values.update(overrides)
    return DigestData(**values)  # type: ignore[arg-type]


def test_the_chart_is_a_png_of_bounded_size() -> None:
    chart = render_digest(digest())
    assert png_size(chart.png) == (1000, 750)
    assert 10_000 < len(chart.png) < 300_000
    assert chart.png.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82")


def test_deploys_inside_the_period_are_marked_in_time_order() -> None:
    assert render_digest(digest()).marked == (41, 42)


def test_without_accuracy_every_deploy_is_marked() -> None:
    assert render_digest(digest(accuracy=[])).marked == (40, 41, 42)


def test_drifted_features_come_first_and_the_verdict_wins() -> None:
    chart = render_digest(digest())
    assert chart.shown[0] == "amount"
    assert set(chart.shown) == {"amount", "country", "age", "prediction"}
    bars = {b.feature: b for b in digest().drift}
    assert bars["amount"].flagged and not bars["prediction"].flagged


def test_many_features_are_capped_and_counted() -> None:
    bars = [DriftBar(f"f{i:02d}", i / 100, 0.1) for i in range(40)]
    chart = render_digest(digest(drift=bars))
    assert len(chart.shown) == MAX_BARS and chart.left_out == 40 - MAX_BARS
    assert chart.shown[0] == "f39"  # the most drifted first


def test_an_empty_digest_still_renders() -> None:
    chart = render_digest(DigestData("churn", "stg"))
    assert png_size(chart.png) == (1000, 750) and chart.marked == () and chart.shown == ()
