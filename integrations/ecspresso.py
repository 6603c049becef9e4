"""The ecspresso CLI (>= v2.4.0, < v3) as bot.ports.Deployer: argument lists, never a shell; a
minimal environment (PATH, locale, the AWS SDK chain, proxies); one timeout per call, after
which the whole process group is stopped, with ecspresso's own ``--timeout`` a margin below it.

Flags used (ecspresso v2, kong, as in reference/ecspresso/cli.json; tests/contracts checks every
argument list against it; ``--config=F`` so no path is read as a flag): ``deploy`` (waits for
a stable service by default) ``[--revision=N] [--no-update-service]``, ``rollback
--no-deregister-task-definition``, ``diff`` (exits 0 whether or not anything changed; the diff
is on stdout, logs on stderr), ``revisions --output=json`` (one JSON object per revision, one
after another), ``render config`` and ``version`` (``ecspresso v2.4.5``). Exit 2 is a Go panic
(an unset ``must_env``): nothing reached AWS.
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
from dataclasses import dataclass
from typing import Any

import structlog
import yaml

from bot.errors import ConfigError, ExternalError, UserInputError
from bot.ports import EcspressoResult

_log = structlog.get_logger(__name__)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
PASSED_THROUGH = ("PATH", "HOME", "LANG", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
AWS_SETTINGS = (  # how the AWS SDKs (Go v2 included) find region, endpoint and credentials
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SDK_LOAD_CONFIG",
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
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_EC2_METADATA_V1_DISABLED",
    "AWS_CA_BUNDLE",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_RETRY_MODE",
    "AWS_MAX_ATTEMPTS",
)
PROXIES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")
SUPPORTED_BELOW = "3.0.0"  # ecspresso v3 may change the flags and exit codes the bot relies on
LineSink = Callable[[str], None]


def aws_environment(source: Mapping[str, str]) -> dict[str, str]:
    """The AWS SDK settings (``AWS_ENDPOINT_URL_<SERVICE>`` too) and proxy variables found in
    ``source``, for base_env: what ecspresso needs to reach AWS as this process does."""
    return {
        k: v
        for k, v in source.items()
        if k in AWS_SETTINGS or k in PROXIES or k.startswith("AWS_ENDPOINT_URL_")
    }


def go_duration(seconds: float) -> str:
    """``seconds`` in Go's duration syntax (``870s``, ``2250ms``), for ``--timeout``."""
    millis = max(round(seconds * 1000), 1)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def inner_timeout(limit: float) -> str:
    """ecspresso's own deadline, a margin below the bot's ``limit`` so that ecspresso stops
    first and cleanly (exit 1) and the bot's kill stays for a wedged process."""
    margin = min(30.0, max(2.0, limit * 0.1), limit / 2)
    return go_duration(limit - margin)


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
        keep_service: bool = False,
    ) -> EcspressoResult:
        return await self.run(
            deploy_args(config, self.deploy_timeout, revision=revision, keep_service=keep_service),
            env,
            on_line,
            time_limit=self.deploy_timeout,
        )

    async def rollback(
        self, config: str, env: Mapping[str, str], on_line: LineSink
    ) -> EcspressoResult:
        args = ["rollback", *common_args(config, self.deploy_timeout)]
        args.append("--no-deregister-task-definition")
        return await self.run(args, env, on_line, time_limit=self.deploy_timeout)

    async def diff(self, config: str, env: Mapping[str, str]) -> str:
        """The diff ecspresso prints ("" = no change); ExternalError when ecspresso itself fails."""
        return await self._stdout("diff", ["diff", *common_args(config, self.timeout)], env)

    async def revisions(self, config: str, env: Mapping[str, str]) -> list[dict[str, Any]]:
        """One dict per revision: ``{"name": "fraud-api:4", "in_use": "PRIMARY deployment"}``."""
        args = ["revisions", *common_args(config, self.timeout), "--output=json"]
        return parse_json_stream(await self._stdout("revisions", args, env))

    async def render_config(self, config: str, env: Mapping[str, str]) -> str:
        """``ecspresso render config``: the config as ecspresso reads it (YAML)."""
        args = ["render", *common_args(config, self.timeout), "config"]
        return await self._stdout("render", args, env)

    async def version(self) -> str:
        """What ``ecspresso version`` prints, e.g. ``ecspresso v2.4.5``."""
        return (await self._stdout("version", ["version"], {})).strip()

    async def check_version(self, minimum: str = "2.4.0", below: str = SUPPORTED_BELOW) -> str:
        """The version found; ConfigError when it is missing, unreadable or outside
        [minimum, below)."""
        try:
            found = await self.version()
        except ExternalError as err:
            raise ConfigError([f"ecspresso at {self.executable} did not run: {err}"]) from None
        return require_version(found, minimum, self.executable, below=below)

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


@dataclass(frozen=True)
class RenderedConfig:
    """What ``render config`` says an ecspresso config deploys, and the plugins it enables."""

    cluster: str
    service: str
    plugins: tuple[str, ...]


def rendered_target(text: str) -> RenderedConfig:
    """Reads ``ecspresso render config`` output (YAML; ``cluster`` defaults to ``default``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ExternalError("ecspresso render config printed something that is not YAML") from None
    if not isinstance(data, dict):
        raise ExternalError("ecspresso render config printed no mapping")
    plugins = data.get("plugins") or []
    names = tuple(
        str(p.get("name")) for p in plugins if isinstance(p, dict) and p.get("name") is not None
    )
    return RenderedConfig(
        str(data.get("cluster") or "default"), str(data.get("service") or ""), names
    )


def common_args(config: str, limit: float) -> list[str]:
    """``--config=F`` (so no path is read as a flag) and ecspresso's own deadline."""
    return [f"--config={config}", f"--timeout={inner_timeout(limit)}"]


def deploy_args(
    config: str, limit: float, *, revision: int | None = None, keep_service: bool = False
) -> list[str]:
    """``deploy``; ``--revision=N`` deploys that registered revision without registering
    (v2.3.3+); ``--no-update-service`` leaves the service definition (desired count too) alone."""
    args = ["deploy", *common_args(config, limit)]
    if revision is not None:
        if revision < 1:
            raise UserInputError(f"a task definition revision is 1 or more, not {revision}")
        args.append(f"--revision={revision}")
    if keep_service:
        args.append("--no-update-service")
    return args


def require_version(
    found: str, minimum: str, executable: str, *, below: str = SUPPORTED_BELOW
) -> str:
    """Checks ``ecspresso vX.Y.Z`` is in [minimum, below); returns the found version line."""
    match, wanted, ceiling = VERSION.search(found), VERSION.search(minimum), VERSION.search(below)
    assert wanted and ceiling, (minimum, below)
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
    if have >= tuple(int(g) for g in ceiling.groups()):
        raise ConfigError(
            [
                f"ecspresso at {executable} is v{'.'.join(map(str, have))}; the bot supports "
                f">= v{minimum} and < v{below} (its flags and exit codes are checked for v2)"
            ]
        )
    return found
