"""files.*: Slack's external upload flow. files.getUploadURLExternal hands out a file id and an
upload URL, the bytes are POSTed to that URL (raw or multipart), and
files.completeUploadExternal shares the file into a channel as a message with a ``files`` entry
(https://docs.slack.dev/reference/methods/files.getUploadURLExternal and
.../files.completeUploadExternal). The stand-in keeps the bytes so tests and the console can
read them."""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from bot.sandbox.slack.args import Emit, Handler, required_arg, text_arg
from bot.sandbox.slack.state import SlackError, Workspace, missing, parse_blocks

MAX_LENGTH = 1024**3  # 1 GB, Slack's limit per file
MAX_ALT_TXT = 1000
MAX_FILES = 100
CHANNEL_ID = re.compile(r"[CGDZ][A-Z0-9]+")


def invalid(message: str) -> SlackError:
    """Slack's answer when an argument is there but malformed."""
    return SlackError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {message}"]})


@dataclass
class StoredFile:
    """One upload: announced, then its bytes, then shared (or kept private)."""

    id: str
    name: str
    length: int
    ticket: str
    alt_txt: str | None = None
    data: bytes | None = None
    title: str | None = None
    completed: bool = False
    created: int = 0
    channels: tuple[str, ...] = ()


class Files:
    """The files.* upload methods and the upload URL's handler."""

    def __init__(self, workspace: Workspace, emit: Emit, base_url: Callable[[], str]) -> None:
        self.workspace = workspace
        self.files: dict[str, StoredFile] = {}
        self._tickets: dict[str, str] = {}
        self._emit = emit
        self._base_url = base_url

    def methods(self) -> dict[str, Handler]:
        return {
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete,
        }

    def data(self, file_id: str) -> bytes | None:
        """The bytes of an uploaded file (None while nothing was uploaded)."""
        stored = self.files.get(file_id)
        return None if stored is None else stored.data

    # -- step 1 ----------------------------------------------------------------------------

    def _get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        name = required_arg(args, "filename")
        length = _length(args)
        alt_txt = text_arg(args, "alt_txt")
        if alt_txt is not None and len(alt_txt) > MAX_ALT_TXT:
            raise SlackError("alt_txt_too_large")
        stored = StoredFile(
            id="F" + secrets.token_hex(5).upper(),
            name=name,
            length=length,
            ticket=secrets.token_urlsafe(16),
            alt_txt=alt_txt,
            created=int(time.time()),
        )
        self.files[stored.id] = stored
        self._tickets[stored.ticket] = stored.id
        url = f"{self._base_url()}/upload/v1/{stored.ticket}"
        return {"ok": True, "upload_url": url, "file_id": stored.id}

    # -- step 2 ----------------------------------------------------------------------------

    async def upload(self, ticket: str, request: web.Request) -> tuple[int, str]:
        """The POST to an upload URL: HTTP 200 ``OK - <bytes>`` when it took the bytes.

        A body whose size is not the ``length`` announced is refused with 400 and not kept
        (Slack: "a non-200 response indicates a failure"); so is a second upload."""
        file_id = self._tickets.get(ticket)
        if file_id is None:
            return 404, "upload URL not found or expired"
        stored = self.files[file_id]
        if stored.data is not None:
            return 400, "this upload URL was already used"
        data = await _body(request, stored.length)
        if len(data) != stored.length:
            return 400, f"length mismatch: announced {stored.length} bytes, received {len(data)}"
        stored.data = data
        return 200, f"OK - {len(data)}"

    # -- step 3 ----------------------------------------------------------------------------

    def _complete(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = _file_entries(args.get("files"))
        targets = self._targets(args)
        thread_ts = text_arg(args, "thread_ts")
        if thread_ts is not None and len(targets) > 1:
            raise invalid("thread_ts needs exactly one channel")
        shared = [self._finish(entry, targets) for entry in entries]
        for channel_id in targets:
            self._share(channel_id, args, shared, thread_ts)
        return {"ok": True, "files": [self._json(f) for f in shared]}

    def _finish(self, entry: dict[str, Any], targets: list[str]) -> StoredFile:
        stored = self.files.get(str(entry["id"]))
        if stored is None or stored.data is None or stored.completed:
            raise SlackError("file_not_found")
        stored.title = str(entry.get("title") or stored.name)
        stored.completed = True
        stored.channels = tuple(targets)
        return stored

    def _targets(self, args: dict[str, Any]) -> list[str]:
        refs = [text_arg(args, "channel_id"), *(text_arg(args, "channels") or "").split(",")]
        targets = [ref.strip() for ref in refs if ref and ref.strip()]
        for ref in targets:
            if not CHANNEL_ID.fullmatch(ref):
                raise invalid(f"channel {ref!r} must be a channel ID such as C0123ABCD")
            if ref not in self.workspace.channels:
                raise SlackError("channel_not_found")
            if ref in self.workspace.outside:
                raise SlackError("not_in_channel")
        return list(dict.fromkeys(targets))

    def _share(
        self, channel_id: str, args: dict[str, Any], shared: list[StoredFile], thread_ts: str | None
    ) -> None:
        ws = self.workspace
        comment = text_arg(args, "initial_comment")
        blocks = None if comment is not None else parse_blocks(args.get("blocks"))
        message = ws.new(channel_id, comment or "", blocks)
        message.thread_ts = thread_ts
        message.files = [self._json(f) for f in shared]
        ws.add(message)
        self._emit(message, "posted")

    def _json(self, stored: StoredFile) -> dict[str, Any]:
        mimetype = mimetypes.guess_type(stored.name)[0] or "application/octet-stream"
        url = f"https://files.sandbox.slack.com/files-pri/{self.workspace.team_id}-{stored.id}"
        body: dict[str, Any] = {
            "id": stored.id,
            "created": stored.created,
            "timestamp": stored.created,
            "name": stored.name,
            "title": stored.title or stored.name,
            "mimetype": mimetype,
            "filetype": stored.name.rpartition(".")[2].lower() if "." in stored.name else "",
            "user": self.workspace.bot_user_id,
            "size": stored.length,
            "url_private": f"{url}/{stored.name}",
            "url_private_download": f"{url}/download/{stored.name}",
            "permalink": f"https://sandbox.slack.com/files/{self.workspace.bot_user_id}/{stored.id}",
            "channels": list(stored.channels),
        }
        if stored.alt_txt is not None:
            body["alt_txt"] = stored.alt_txt
        return body


def _length(args: dict[str, Any]) -> int:
    raw = args.get("length")
    if raw is None or raw == "":
        raise missing("length")
    try:
        length = int(str(raw))
    except ValueError:
        raise invalid(f"length must be a whole number of bytes, got {raw!r}") from None
    if length <= 0:
        raise invalid(f"length must be at least 1 byte, got {length}")
    if length > MAX_LENGTH:
        raise SlackError("file_upload_size_restricted")
    return length


def _file_entries(raw: Any) -> list[dict[str, Any]]:
    """``files``: a JSON array (or, in a JSON body, the array itself) of ``{"id", "title"}``."""
    if raw is None or raw == "":
        raise missing("files")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise invalid("files must be a JSON array of {id, title} objects") from None
    if not isinstance(raw, list) or not raw or len(raw) > MAX_FILES:
        raise invalid(f"files must be an array of 1 to {MAX_FILES} {{id, title}} objects")
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise invalid(f"missing required field: id [json-pointer:/files/{i}]")
    return raw


async def _body(request: web.Request, length: int) -> bytes:
    """The uploaded bytes: a multipart form's first file part, or the raw body."""
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.filename is not None:
                return bytes(await part.read())
        return b""
    data = bytearray()
    while len(data) <= length and (chunk := await request.content.readany()):
        data += chunk
    return bytes(data)
