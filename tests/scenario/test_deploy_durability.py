"""Deploys that survive the bot: a kill, a restart, a stop. Signed Slack requests, moto's ECS,
the ecspresso stand-in as a real process (its own process group). A kill is a real SIGKILL of a
bot started as its own process (``mlops-bot serve``) on the sandbox's store and stand-ins, dying
at a named crash point; the restarted bot runs in this process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from pydantic import SecretStr

from bot import app as bot_app
from bot.config.settings import Settings
from bot.domain.deploys import Deployment, DeployState
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox, running_sandbox, sample_config
from bot.store import Store
from tests.helpers import eventually
from tests.pg import free_port
from tests.scenario.test_deploy import card_of, deploy_state, trained
from tests.scenario.test_deploy_verify import ecs, service

ROOT = Path(__file__).resolve().parents[2]
PIDFILE = "MLOPS_ECSPRESSO_STANDIN_PIDFILE"


@dataclass
class Durable:
    sandbox: Sandbox
    console: Console
    pidfile: Path
    tmp: Path

    def pids(self) -> list[int]:
        """The hanging stand-in and its child (written by the stand-in when it hangs)."""
        return [int(p) for p in self.pidfile.read_text().split()]


@pytest.fixture
async def durable(tmp_path: Path) -> AsyncIterator[Durable]:
    """The sandbox, with fraud/stg's ecspresso writing its pids (when it hangs) to a file."""
    data = yaml.safe_load(sample_config().read_text())
    pidfile = tmp_path / "ecspresso.pids"
    stg = data["models"]["fraud"]["environments"]["stg"]
    stg["variables"] = {**(stg.get("variables") or {}), PIDFILE: str(pidfile)}
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump(data))
    async with running_sandbox(config) as sandbox, aiohttp.ClientSession() as http:
        yield Durable(sandbox, sandbox.console(io.StringIO(), http), pidfile, tmp_path)


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie left for an init that does not reap counts as ended."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def plain(value: Any) -> Any:
    """Settings as YAML can hold them (secrets revealed: the file is the child bot's config)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


async def killed_at(
    d: Durable, point: str, line: str, when: Callable[[], Awaitable[bool]] | None = None
) -> int:
    """Stop the sandbox's bot, run ``line`` against a bot started as its own process on the
    same settings, which SIGKILLs itself at crash point ``point`` (or is SIGKILLed once
    ``when`` holds); returns its exit status."""
    settings: Settings = d.sandbox.bot.settings
    await bot_app.stop(d.sandbox.bot)
    port = free_port()
    data = plain(settings.model_dump(mode="python"))
    data["server"] = {**data.get("server", {}), "host": "127.0.0.1", "port": port}
    config = d.tmp / "child-bot.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if point:
        env["MLOPS_BOT_CRASH_AT"] = point
    log = (d.tmp / "child-bot.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            assert child.poll() is None, (d.tmp / "child-bot.log").read_text()
            with contextlib.suppress(aiohttp.ClientError):
                async with d.console.session.get(f"{url}/healthz") as answer:
                    return answer.status == 200
            return False

        await eventually(up, timeout=60)
        d.console.bot_url = url
        await d.console.execute(line)
        if when is not None:
            await eventually(when, timeout=60)
            os.killpg(child.pid, signal.SIGKILL)  # the bot's own group: ecspresso has its own
        return await asyncio.wait_for(asyncio.to_thread(child.wait), timeout=60)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        log.close()


async def started_again(d: Durable) -> None:
    """A new bot on the same store and stand-ins, in this process."""
    d.sandbox.bot = await bot_app.build(d.sandbox.bot.settings)
    d.sandbox.url = await bot_app.start(d.sandbox.bot, host="127.0.0.1", port=0)
    d.console.bot_url = d.sandbox.url


async def row(store: Store, deploy_id: int = 1) -> Deployment:
    found = await store.deployments.get(deploy_id)
    assert found is not None
    return found


def register_like_the_first(sandbox: Sandbox, *, digest: str | None = None) -> str:
    """A revision of fraud/stg's family registered as fraud-api-stg:1 was (on ``digest`` when
    given), as another registration would; its ARN."""
    client = ecs(sandbox)
    td = client.describe_task_definition(taskDefinition="fraud-api-stg:1")["taskDefinition"]
    api = td["containerDefinitions"][0]
    if digest is not None:
        api = {**api, "image": api["image"].split("@")[0] + "@" + digest}
    return str(
        client.register_task_definition(
            family=td["family"],
            networkMode=td["networkMode"],
            requiresCompatibilities=td["requiresCompatibilities"],
            containerDefinitions=[api],
        )["taskDefinition"]["taskDefinitionArn"]
    )


def registered(sandbox: Sandbox) -> int:
    """Task definition revisions of fraud/stg in moto: one per ecspresso deploy that ran."""
    arns = ecs(sandbox).list_task_definitions(familyPrefix="fraud-api-stg")["taskDefinitionArns"]
    return len(arns)


async def a_kill_during_a_hanging_ecspresso(
    d: Durable, mode: str = "hang@deploy"
) -> tuple[Store, Deployment, list[int]]:
    """/deploy fraud stg in a bot killed while its ecspresso hangs (``mode``: before any ECS
    call, or once it registered its task definition): the deploy is running, its lock held
    and its ecspresso group recorded and alive."""
    await trained(d.sandbox, d.console)
    await d.console.execute(f"ecspresso {mode}")

    store = Store.from_url(d.sandbox.bot.settings.store_url)

    async def hanging() -> bool:
        found = await store.deployments.get(1)
        return found is not None and found.ecspresso_pgid is not None and _exists(d.pidfile)

    status = await killed_at(d, "", "/deploy fraud stg", when=hanging)

    assert status == -signal.SIGKILL
    left = await row(store)
    assert left.state == DeployState.RUNNING and left.step == "ecspresso"
    assert left.ecspresso_pgid is not None and left.ecspresso_runs == 1
    lock = await store.get_lock("fraud", "stg")
    assert lock is not None and lock.holder == "deploy #1"
    pids = d.pids()
    assert left.ecspresso_pgid == pids[0]
    assert all(alive(p) for p in pids)  # the orphans: nothing ended them
    await d.console.execute("ecspresso ok")
    return store, left, pids


def _exists(path: Path) -> bool:
    return path.exists() and len(path.read_text().split()) == 2


async def test_a_restart_right_after_success_leaves_the_card_final_and_the_lock_free(
    durable: Durable,
) -> None:
    d = durable
    await trained(d.sandbox, d.console)
    await d.console.execute("/deploy fraud stg")

    async def succeeded() -> bool:
        found = await row(d.sandbox.bot.store)
        lock = await d.sandbox.bot.store.get_lock("fraud", "stg")
        # never one without the other: the state and the release are one transaction
        assert found.state != DeployState.SUCCEEDED or lock is None
        return found.state == DeployState.SUCCEEDED

    await eventually(succeeded, timeout=40)
    await d.sandbox.restart()
    d.console.bot_url = d.sandbox.url

    await deploy_state(d.sandbox, 1, DeployState.SUCCEEDED)
    assert await d.sandbox.bot.store.get_lock("fraud", "stg") is None
    assert "revision 2 verified on ECS" in card_of(d.sandbox, 1)
    await d.console.execute("/deploy fraud stg image=v1")  # not refused: nothing is locked
    await deploy_state(d.sandbox, 2, DeployState.SUCCEEDED)


async def test_a_kill_after_success_is_stored_leaves_no_lock(durable: Durable) -> None:
    d = durable
    await trained(d.sandbox, d.console)

    status = await killed_at(d, "deploy.succeeded", "/deploy fraud stg")

    assert status == -signal.SIGKILL
    store = Store.from_url(d.sandbox.bot.settings.store_url)
    try:
        assert (await row(store)).state == DeployState.SUCCEEDED
        assert await store.get_lock("fraud", "stg") is None
    finally:
        await store.close()
    await started_again(d)
    await d.console.execute("/deploy fraud stg image=v1")  # not refused: nothing is locked
    await deploy_state(d.sandbox, 2, DeployState.SUCCEEDED)


async def test_a_kill_during_ecspresso_with_ecs_unchanged_runs_ecspresso_once_more(
    durable: Durable,
) -> None:
    d = durable
    store, _, pids = await a_kill_during_a_hanging_ecspresso(d)
    try:
        assert registered(d.sandbox) == 1  # the hung ecspresso registered nothing

        await started_again(d)

        await deploy_state(d.sandbox, 1, DeployState.SUCCEEDED)
        assert not any(alive(p) for p in pids)  # ended by the new bot before it went on
        done = await row(store)
        assert done.ecspresso_runs == 2 and done.ecspresso_pgid is None and done.revision == 2
        assert registered(d.sandbox) == 2  # one ecspresso deploy registered: the re-run's
        assert service(d.sandbox)["taskDefinition"].endswith(":2")
        assert "revision 2 verified on ECS" in card_of(d.sandbox, 1)
        assert await store.get_lock("fraud", "stg") is None
    finally:
        await store.close()


async def test_a_kill_after_ecspresso_registered_deploys_that_revision_and_registers_none(
    durable: Durable,
) -> None:
    d = durable
    store, _, pids = await a_kill_during_a_hanging_ecspresso(d, "hang-registered@deploy")
    try:
        assert registered(d.sandbox) == 2  # the killed ecspresso registered revision 2
        assert service(d.sandbox)["taskDefinition"].endswith(":1")  # and updated nothing

        await started_again(d)

        await deploy_state(d.sandbox, 1, DeployState.SUCCEEDED)
        assert not any(alive(p) for p in pids)
        done = await row(store)
        assert done.ecspresso_runs == 2 and done.revision == 2
        assert registered(d.sandbox) == 2  # the re-run deployed revision 2 as it was
        assert service(d.sandbox)["taskDefinition"].endswith(":2")
        assert "revision 2 verified on ECS" in card_of(d.sandbox, 1)
    finally:
        await store.close()


async def test_a_revision_of_another_image_registered_meanwhile_is_not_deployed(
    durable: Durable,
) -> None:
    d = durable
    store, _, _ = await a_kill_during_a_hanging_ecspresso(d)
    try:
        register_like_the_first(d.sandbox)  # someone else's, on the image ECS already runs

        await started_again(d)

        await deploy_state(d.sandbox, 1, DeployState.SUCCEEDED)
        assert (await row(store)).revision == 3  # the re-run registered its own
        assert registered(d.sandbox) == 3
        assert "revision 3 verified on ECS" in card_of(d.sandbox, 1)
    finally:
        await store.close()


async def test_a_kill_during_ecspresso_after_ecs_changed_follows_the_rollout(
    durable: Durable,
) -> None:
    d = durable
    store, left, pids = await a_kill_during_a_hanging_ecspresso(d)
    try:
        # what ecspresso had done before the bot died: the run's image registered, the service
        # on it (the hang itself happens before any ECS call)
        client = ecs(d.sandbox)
        new = register_like_the_first(d.sandbox, digest=left.digest)
        client.update_service(cluster="ml-stg", service="fraud-api", taskDefinition=new)

        await started_again(d)

        await deploy_state(d.sandbox, 1, DeployState.SUCCEEDED)
        assert not any(alive(p) for p in pids)
        done = await row(store)
        assert done.ecspresso_runs == 1 and done.revision == 2  # followed, not run again
        assert registered(d.sandbox) == 2  # no rollback, no second deploy
        assert service(d.sandbox)["taskDefinition"].endswith(":2")
        assert "revision 2 verified on ECS" in card_of(d.sandbox, 1)
        assert await store.get_lock("fraud", "stg") is None
    finally:
        await store.close()


async def test_stop_during_a_deploy_ends_ecspresso_keeps_the_lock_and_the_next_start_resumes(
    durable: Durable, capfd: pytest.CaptureFixture[str]
) -> None:
    d = durable
    await trained(d.sandbox, d.console)
    await d.console.execute("ecspresso hang@deploy")
    await d.console.execute("/deploy fraud stg")
    store = d.sandbox.bot.store

    async def recorded() -> bool:
        return (await row(store)).ecspresso_pgid is not None and _exists(d.pidfile)

    await eventually(recorded, timeout=30)
    pids = d.pids()
    assert (await row(store)).ecspresso_pgid == pids[0] and all(alive(p) for p in pids)
    capfd.readouterr()

    await bot_app.stop(d.sandbox.bot)

    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "no such table" not in out + err
    assert not any(alive(p) for p in pids)
    after = Store.from_url(d.sandbox.bot.settings.store_url)
    try:
        left = await row(after)
        assert left.state == DeployState.RUNNING and left.ecspresso_pgid is None
        lock = await after.get_lock("fraud", "stg")
        assert lock is not None and lock.holder == "deploy #1"  # it resumes: still its own

        await d.console.execute("ecspresso ok")
        await started_again(d)

        await deploy_state(d.sandbox, 1, DeployState.SUCCEEDED)
        done = await row(after)
        assert done.ecspresso_runs == 2 and done.revision == 2
        assert registered(d.sandbox) == 2
        assert await after.get_lock("fraud", "stg") is None
    finally:
        await after.close()
