"""The ecspresso CLI (>= v2.4.0) as bot.ports.Deployer: argument lists, never a shell; a minimal
environment; one timeout per call, after which the whole process group is stopped.

Flags used (ecspresso v2, kong; ``--config=F`` so no path is read as a flag): ``deploy``
(waits for a stable service by default) ``[--skip-task-definition --revision=N]``,
``rollback --no-deregister-task-definition``, ``diff`` (exits 0 whether or not anything
changed; the diff is on stdout, logs on stderr), ``revisions --output=json`` (one JSON object
per revision, one after another) and ``version`` (``ecspresso v2.4.5``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from bot.errors import ConfigError, ExternalError, UserInputError
from bot.ports import EcspressoResult

_log = structlog.get_logger(__name__)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
PASSED_THROUGH = ("PATH", "HOME", "LANG", "TZ", "SSL_CERT_FILE")
AWS_SETTINGS = (  # the SDK's region, endpoint and credential-chain settings
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
)
LineSink = Callable[[str], None]


def aws_environment(source: Mapping[str, str]) -> dict[str, str]:
    """The AWS settings (``AWS_ENDPOINT_URL_<SERVICE>`` too) found in ``source``, for base_env."""
    return {
        k: v for k, v in source.items() if k in AWS_SETTINGS or k.startswith("AWS_ENDPOINT_URL_")
    }


class Ecspresso:
    """Runs one ecspresso executable; ``base_env`` carries AWS region, endpoint and credentials.

    The child sees PATH, HOME (and a few locale/TLS variables) from this process, then
    ``base_env``, then the per-call ``env``, plus MLOPS_BOT_PYTHON (this interpreter, which
    the sandbox stand-in's wrapper script runs).
    """

    def __init__(
        self,
        executable: str,
        *,
        base_env: Mapping[str, str] | None = None,
        deploy_timeout: float = 900.0,
        timeout: float = 120.0,
        kill_grace: float = 3.0,
        tail_lines: int = 200,
    ) -> None:
        self.executable = executable
        self.base_env = dict(base_env or {})
        self.deploy_timeout = deploy_timeout
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.tail_lines = tail_lines

    async def deploy(
        self,
        config: str,
        env: Mapping[str, str],
        on_line: LineSink,
        *,
        revision: int | None = None,
    ) -> EcspressoResult:
        args = ["deploy", f"--config={config}"]
        if revision is not None:
            if revision < 1:
                raise UserInputError(f"a task definition revision is 1 or more, not {revision}")
            args += ["--skip-task-definition", f"--revision={revision}"]
        return await self.run(args, env, on_line, time_limit=self.deploy_timeout)

    async def rollback(
        self, config: str, env: Mapping[str, str], on_line: LineSink
    ) -> EcspressoResult:
        args = ["rollback", f"--config={config}", "--no-deregister-task-definition"]
        return await self.run(args, env, on_line, time_limit=self.deploy_timeout)

    async def diff(self, config: str, env: Mapping[str, str]) -> str:
        """The diff ecspresso prints ("" = no change); ExternalError when ecspresso itself fails."""
        return await self._stdout("diff", ["diff", f"--config={config}"], env)

    async def revisions(self, config: str, env: Mapping[str, str]) -> list[dict[str, Any]]:
        """One dict per revision: ``{"name": "fraud-api:4", "in_use": "PRIMARY deployment"}``."""
        args = ["revisions", f"--config={config}", "--output=json"]
        return parse_json_stream(await self._stdout("revisions", args, env))

    async def version(self) -> str:
        """What ``ecspresso version`` prints, e.g. ``ecspresso v2.4.5``."""
        return (await self._stdout("version", ["version"], {})).strip()

    async def check_version(self, minimum: str = "2.4.0") -> str:
        """The version found; ConfigError when it is missing, unreadable or older than minimum."""
        try:
            found = await self.version()
        except ExternalError as err:
            raise ConfigError([f"ecspresso at {self.executable} did not run: {err}"]) from None
        return require_version(found, minimum, self.executable)

    async def run(
        self,
        args: list[str],
        env: Mapping[str, str],
        on_line: LineSink,
        *,
        time_limit: float,
    ) -> EcspressoResult:
        """Runs ``executable *args``; stdout and stderr, merged, go to ``on_line`` line by line."""
        proc = await self._spawn(args, env, merge=True)
        tail: deque[str] = deque(maxlen=self.tail_lines)

        def sink(line: str) -> None:
            tail.append(line)
            on_line(line)

        timed_out = False
        try:
            async with asyncio.timeout(time_limit):
                await asyncio.gather(*(_pump(p, sink) for p in (proc.stdout, proc.stderr) if p))
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            await self._stop(proc, force=timed_out)
        _log.info(
            "ecspresso.finished", command=args[0], exit_code=proc.returncode, timed_out=timed_out
        )
        code = None if timed_out else proc.returncode
        return EcspressoResult(exit_code=code, output="\n".join(tail), timed_out=timed_out)

    async def _stdout(self, what: str, args: list[str], env: Mapping[str, str]) -> str:
        """Runs a reporting command: its stdout is the answer, stderr only explains failures."""
        out: list[str] = []
        errors: deque[str] = deque(maxlen=20)
        proc = await self._spawn(args, env, merge=False)
        timed_out = False
        try:
            async with asyncio.timeout(self.timeout):
                assert proc.stdout and proc.stderr
                await asyncio.gather(
                    _pump(proc.stdout, out.append), _pump(proc.stderr, errors.append)
                )
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            await self._stop(proc, force=timed_out)
        if timed_out:
            raise ExternalError(f"ecspresso {what} did not finish within {self.timeout:g} s")
        if proc.returncode != 0:
            last = " | ".join(errors) or "no output"
            raise ExternalError(f"ecspresso {what} failed (exit {proc.returncode}): {last}")
        return "".join(line + "\n" for line in out)

    async def _spawn(
        self, args: list[str], env: Mapping[str, str], *, merge: bool
    ) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                self.executable,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if merge else asyncio.subprocess.PIPE,
                env=self.child_env(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise ConfigError(
                [f"ecspresso at {self.executable} cannot be run: {exc.strerror}"]
            ) from None

    def child_env(self, env: Mapping[str, str]) -> dict[str, str]:
        merged = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        merged.update(self.base_env)
        merged.update(env)
        merged["MLOPS_BOT_PYTHON"] = sys.executable
        return merged

    async def _stop(self, proc: asyncio.subprocess.Process, *, force: bool) -> None:
        """Ends the whole process group (TERM, KILL after the grace) unless it ended by itself."""
        if proc.returncode is not None and not force:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(self.kill_grace):
                await proc.wait()
        except TimeoutError:
            pass
        _signal_group(proc.pid, signal.SIGKILL)  # also grandchildren still holding the pipes
        await proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _pump(stream: asyncio.StreamReader, sink: LineSink) -> None:
    """Feeds complete lines to ``sink`` as they arrive, whatever their length."""
    pending = b""
    while chunk := await stream.read(65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sink(_text(line))
    if pending:
        sink(_text(pending))


def _text(raw: bytes) -> str:
    return ANSI.sub("", raw.decode("utf-8", errors="replace").rstrip("\r"))


def parse_json_stream(text: str) -> list[dict[str, Any]]:
    """ecspresso prints revisions as concatenated JSON objects (an array is accepted too)."""
    decoder = json.JSONDecoder()
    items: list[dict[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            raise ExternalError("ecspresso revisions printed something that is not JSON") from None
        items.extend(
            v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)
        )
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return items


def require_version(found: str, minimum: str, executable: str) -> str:
    """Checks ``ecspresso vX.Y.Z`` against ``minimum``; returns the found version line."""
    match, wanted = VERSION.search(found), VERSION.search(minimum)
    assert wanted, minimum
    if not match:
        raise ConfigError(
            [f"ecspresso at {executable} printed no version ({found!r}); need >= v{minimum}"]
        )
    have = tuple(int(g) for g in match.groups())
    if have < tuple(int(g) for g in wanted.groups()):
        raise ConfigError(
            [
                f"ecspresso at {executable} is v{'.'.join(map(str, have))}; the bot needs "
                f">= v{minimum} (older versions exit 0 after a circuit-breaker rollback)"
            ]
        )
    return found
