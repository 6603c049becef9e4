"""Per-command SQL does not grow with the store: 10,000 active runs and 10,000 deploys.

Each command runs through the sandbox's real services and views (the handlers' dispatch, as
the interaction processor calls it) while a listener on the engine counts the statements the
command executes and the rows they return. The bounds are constants: the same figures hold at
10 rows. Every SELECT is also checked with SQLite's query plan for a full table scan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot import intents as i
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox
from bot.views.blocks import Message
from handlers import deploy_commands, train_commands
from tests import sql_count
from tests.seed import seed

N = 10_000
TABLES = ("runs", "deployments", "approval_votes")


@pytest.fixture
async def big(sandbox: Sandbox) -> AsyncIterator[Sandbox]:
    sandbox.gitlab.auto_advance(None)
    await seed(sandbox.bot.store, active=N, finished=50, deploys=N)
    sql_count.install(sandbox.bot.store.db.engine)
    yield sandbox


def database(sandbox: Sandbox) -> str:
    url = sandbox.bot.settings.store_url
    return url.split(":///", 1)[1]


def text(message: Message) -> str:
    return "\n".join(b.get("text", {}).get("text", "") for b in message.blocks)


async def train(sandbox: Sandbox, actor: str, intent: i.TrainIntent) -> Message:
    return await train_commands.dispatch(sandbox.bot.deps.training, actor, intent)


async def deploy(sandbox: Sandbox, actor: str, intent: i.DeployIntent) -> Message:
    return await deploy_commands.dispatch(sandbox.bot.deps, actor, intent)


# (command, intent, actor, max statements, max rows returned)
TRAIN_CASES = [
    ("/train list", i.TrainList(), "U0DAVE", 6, 22),
    ("/train list fraud", i.TrainList("fraud"), "U0DAVE", 6, 22),
    ("/train list fraud page=900", i.TrainList("fraud", page=900), "U0DAVE", 6, 22),
    ("/train fraud status 7", i.TrainStatus("fraud", 7), "U0DAVE", 2, 1),
]
DEPLOY_CASES = [
    # a count, a page of 10 deploys, their 20 votes, their 10 runs; BEGIN per connection
    ("/deploy fraud history prod", i.DeployHistory("fraud", "prod"), 8, 1 + 10 + 20 + 10),
    ("/deploy fraud history prod page=999", i.DeployHistory("fraud", "prod", 999), 8, 41),
    ("/deploy fraud status prod", i.DeployStatus("fraud", "prod"), 6, 3),
]


async def test_every_command_reads_a_constant_amount(big: Sandbox) -> None:
    """Statements (BEGIN included) and rows returned per command, with 10,000 of each."""
    measured = {}
    for name, intent, actor, statements, rows in TRAIN_CASES:
        with sql_count.counting() as found:
            assert text(await train(big, actor, intent))
        measured[name] = (len(found.statements), found.rows, statements, rows, found)
    for name, d_intent, statements, rows in DEPLOY_CASES:
        with sql_count.counting() as found:
            assert text(await deploy(big, "U0DAVE", d_intent))
        measured[name] = (len(found.statements), found.rows, statements, rows, found)
    for name, (count, read, max_count, max_read, found) in measured.items():
        assert count <= max_count and read <= max_read, (name, count, read)
        assert found.full_scans(database(big), TABLES) == [], name


async def test_starting_a_run_sums_the_gpu_quota_in_sql(big: Sandbox) -> None:
    with sql_count.counting() as found:
        reply = await train(big, "U0ALICE", i.TrainStart("fraud", ref="main"))
    assert "Started run" in text(reply)
    quota = [s for s in found.statements if "sum(" in s.sql.lower()]
    assert len(quota) == 1 and quota[0].rows == 1
    assert found.rows < 20, [(s.sql, s.rows) for s in found.statements]
    assert found.full_scans(database(big), TABLES) == []

    # the approval expiry poll reads only what is due
    with sql_count.counting() as found:
        expired = await big.bot.deps.approvals.expire_due()
    assert expired == 0
    assert len(found.statements) <= 2 and found.rows == 0
    assert found.full_scans(database(big), TABLES) == []


async def test_listings_page_and_say_what_they_left_out(big: Sandbox, console: Console) -> None:
    first = text(await train(big, "U0DAVE", i.TrainList("fraud")))
    assert "active runs 1-10 of 10,000 · 9,990 more: `/train list fraud page=2`" in first
    assert "finished runs 1-10 of 50 · 40 more: `/train list fraud page=2`" in first
    second = text(await train(big, "U0DAVE", i.TrainList("fraud", page=2)))
    assert "*#11* fraud" in second and "*#10* fraud" not in second
    last = text(await train(big, "U0DAVE", i.TrainList("fraud", page=1000)))
    assert "active runs 9,991-10,000 of 10,000" in last and "more:" not in last.split("\n")[11]
    beyond = text(await train(big, "U0DAVE", i.TrainList("fraud", page=5000)))
    assert "no active runs on page 5,000 (there are 10,000)" in beyond

    # history: newest first, with each deploy's run and votes
    first = text(await deploy(big, "U0DAVE", i.DeployHistory("fraud", "prod")))
    assert first.index(f"*#{N}*") < first.index(f"*#{N - 9}*")
    assert "deploys 1-10 of 10,000 · 9,990 more: `/deploy fraud history prod page=2`" in first
    assert first.count("<@U0BOB>, <@U0CAROL>") == 10 and "run #" in first
    second = text(await deploy(big, "U0DAVE", i.DeployHistory("fraud", "prod", page=2)))
    assert f"*#{N - 10}*" in second and f"*#{N}*" not in second

    # over Slack (signed command, edge, inbox, bolt): whole date tokens, under 3,000 characters
    await console.execute("as dave")
    await console.execute("/train list fraud more")
    reply = [m for m in big.slack.messages if m.ephemeral_to == "U0DAVE"][-1]
    for block in reply.blocks:
        body = block["text"]["text"]
        assert len(body) <= 3000
        assert body.count("<!date^") == body.count("|2025-")  # every token is whole
    assert "active runs 11-20 of 10,000" in text(Message("", reply.blocks))
