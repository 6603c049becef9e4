"""Store faults are plain: a full, read-only, corrupt or unreachable store gives one line that
names the store, what is wrong and what to do; /readyz says 503 when the store cannot take a
write; a command that cannot be recorded is told so. The full and read-only disks are real:
a small tmpfs (mounting needs root, which CI has)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from bot import app as bot_app
from bot.config.loading import settings_from_data
from bot.sandbox.signing import signed_headers
from bot.store import Store

ROOT = Path(__file__).resolve().parents[2]
SECRET = "faults-signing-secret"


def cli(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MLOPS_BOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env | {"MLOPS_BOT_STORE_URL": store},
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mlops-bot:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_corrupt_store_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    db.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    line = one_line(cli("migrate", store=f"sqlite:///{db}"))
    assert f"the store at sqlite:///{db}: its file is corrupt" in line
    assert "restore it from a backup" in line


def test_a_directory_that_cannot_exist_is_named_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    db = tmp_path / "a-file" / "bot.db"
    line = one_line(cli("audit", store=f"sqlite:///{db}"))
    assert "it cannot be opened; check that its directory exists" in line


def test_an_unreachable_postgresql_hides_the_password(tmp_path: Path) -> None:
    line = one_line(cli("migrate", store="postgresql://bot:hunter2@127.0.0.1:9/bot"))
    assert "hunter2" not in line and "***" in line
    assert "it does not answer" in line


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("store fault tests mount a tmpfs and need root on CI")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; the filler file is returned so it can be removed."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
    finally:
        os.close(fd)
    return filler


@pytest.fixture
async def bot_on_disk(tiny_disk: Path) -> AsyncIterator[tuple[bot_app.Bot, Path]]:
    store_url = f"sqlite:///{tiny_disk / 'bot.db'}"
    store = Store.from_url(store_url)
    await store.migrate()
    await store.close()
    settings = settings_from_data(
        {
            "data_dir": str(tiny_disk),
            "store": {"url": store_url},
            "slack": {
                "bot_token": "xoxb-faults",
                "signing_secret": SECRET,
                "api_url": "http://127.0.0.1:9/api/",
            },
        }
    )
    bot = await bot_app.build(settings)
    await bot_app.start(bot, host="127.0.0.1", port=0)
    try:
        yield bot, tiny_disk
    finally:
        with contextlib.suppress(OSError):
            (tiny_disk / "filler").unlink()
        await bot_app.stop(bot)


async def test_a_full_disk_makes_readyz_503_and_commands_say_nothing_started(
    bot_on_disk: tuple[bot_app.Bot, Path],
) -> None:
    bot, disk = bot_on_disk
    body = urllib.parse.urlencode(
        {
            "command": "/deploy",
            "text": "help",
            "user_id": "U0ALICE",
            "channel_id": "C0FAULTS",
            "trigger_id": f"t-{time.time()}",
        }
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{bot.url}/readyz") as ready:
            assert ready.status == 200
        filler = fill(disk)
        async with http.get(f"{bot.url}/readyz") as ready:
            assert ready.status == 503
            assert "the store cannot take a write: its disk is full" in await ready.text()
        headers = signed_headers(SECRET, body)
        async with http.post(f"{bot.url}/slack/events", data=body, headers=headers) as answer:
            assert answer.status == 200
            reply = await answer.json()
        assert reply["response_type"] == "ephemeral"
        assert reply["text"] == (
            "Nothing was started: the bot cannot record commands right now (its disk is full)."
        )
        filler.unlink()
        async with http.get(f"{bot.url}/readyz") as ready:
            assert ready.status == 200


def test_a_read_only_store_is_named_with_what_to_do(tiny_disk: Path) -> None:
    store = f"sqlite:///{tiny_disk / 'bot.db'}"
    assert cli("migrate", store=store).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    line = one_line(cli("migrate", store=store.replace("bot.db", "other.db")))
    assert f"the store at {store.replace('bot.db', 'other.db')}:" in line
    assert "read-only" in line or "cannot be opened" in line
