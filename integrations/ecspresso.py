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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml

from bot.crash import crash_point
from bot.errors import ConfigError, ExternalError, UserInputError
from bot.ports import EcspressoResult, ProcessGroup

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
OnStart = Callable[[ProcessGroup], Awaitable[None]]
PROC = Path("/proc")
GONE_POLL_SECONDS = 0.05


def aws_environment(source: Mapping[str, str]) -> dict[str, str]:
    """The AWS SDK settings (``AWS_ENDPOINT_URL_<SERVICE>`` too) and proxy variables found in
    ``source``, for base_env: what ecspresso needs to reach AWS as this process does."""
    return {
        k: v
        for k, v in source.items()
        if k in AWS_SETTINGS or k in PROXIES or k.startswith("AWS_ENDPOINT_URL_")
    }


def ecspresso_aws_env(
    source: Mapping[str, str], region: str, endpoint_url: str | None
) -> dict[str, str]:
    """What ecspresso needs to reach AWS as the bot does: region, endpoint, the SDK credential
    chain (keys, profiles, web identity, container credentials) and proxies."""
    values = aws_environment(source)
    values["AWS_REGION"] = region
    if endpoint_url:
        values["AWS_ENDPOINT_URL"] = endpoint_url
    return values


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
        on_start: OnStart | None = None,
    ) -> EcspressoResult:
        return await self.run(
            deploy_args(config, self.deploy_timeout, revision=revision, keep_service=keep_service),
            env,
            on_line,
            time_limit=self.deploy_timeout,
            on_start=on_start,
        )

    async def end_group(self, group: ProcessGroup) -> bool:
        """Ends a recorded ecspresso process group (one this process did not start: left by an
        earlier bot) if it still runs: SIGTERM, SIGKILL after the grace. True when none of its
        processes runs any more; a pid that now belongs to someone else is left alone."""
        for sig, wait in ((signal.SIGTERM, self.kill_grace), (signal.SIGKILL, self.kill_grace)):
            if not group_members(group):
                return True
            _log.warning("ecspresso.ending_group", pgid=group.pgid, signal=sig.name)
            _signal_group(group.pgid, sig)
            await _until_gone(group, wait)
        return not group_members(group)

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
        on_start: OnStart | None = None,
    ) -> EcspressoResult:
        """Runs ``executable *args``; stdout and stderr, merged, go to ``on_line`` line by line.
        ``on_start`` gets the process group first; whatever ends this call (an error,
        cancellation) ends the group before it returns."""
        proc = await self._spawn(args, env, merge=True)
        tail: deque[str] = deque(maxlen=self.tail_lines)

        def sink(line: str) -> None:
            tail.append(line)
            on_line(line)

        timed_out, finished = False, False
        try:
            if on_start is not None:
                await on_start(ProcessGroup(proc.pid, fingerprint(proc.pid)))
                crash_point(f"ecspresso.{args[0]}")
            async with asyncio.timeout(time_limit):
                await asyncio.gather(*(_pump(p, sink) for p in (proc.stdout, proc.stderr) if p))
                await proc.wait()
            finished = True
        except TimeoutError:
            timed_out = True
        finally:
            await self._stop(proc, force=not finished)
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
        crash_point(f"ecspresso.{what}")
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
        """Ends the whole process group (TERM, KILL after the grace) unless it ended by itself;
        then kills whatever it left behind in its group."""
        if proc.returncode is not None and not force:
            _signal_group(proc.pid, signal.SIGKILL)
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


def boot_id() -> str:
    """This boot's id (Linux); "" where there is none to read."""
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks since boot) of ``pid``, from
    /proc/<pid>/stat; None when it is gone (or there is no /proc)."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[2]), int(fields[19])


def fingerprint(pid: int) -> str:
    """``<boot id>:<start time>`` of a running process ("" for the start time if unknown)."""
    found = _stat(pid)
    return f"{boot_id()}:{found[2] if found else ''}"


def group_members(group: ProcessGroup) -> list[int]:
    """The live (not zombie) processes of a recorded group: same boot, in process group
    ``pgid`` and started no earlier than its leader. A group whose fingerprint cannot be read
    (no /proc) counts as running if the group exists at all, so its lock stays held."""
    boot, _, start = group.fingerprint.partition(":")
    if not PROC.is_dir() or not start:
        try:
            os.killpg(group.pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            return [group.pgid]
        return [group.pgid]
    if boot != boot_id():
        return []  # another boot: every process of that one is gone
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        found = _stat(int(entry.name))
        if found and found[0] != "Z" and found[1] == group.pgid and found[2] >= int(start):
            members.append(int(entry.name))
    return members


async def _until_gone(group: ProcessGroup, limit: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            # another process's children: no wait() tells when they end, so look again
            while True:
                if not group_members(group):
                    return
                await asyncio.sleep(GONE_POLL_SECONDS)


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
