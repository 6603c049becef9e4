"""What a newcomer meets on the deploy path: votes say what happens next, a reaction that is
not a vote says so, and a card never shows an empty digest."""

from __future__ import annotations

from bot.domain.deploys import DeployState
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox
from tests.scenario.test_deploy import card_of, deploy_state, on_stg, replies_to


async def test_votes_and_stray_reactions_say_what_happens(
    console: Console, sandbox: Sandbox
) -> None:
    await on_stg(sandbox, console)
    await console.execute("/deploy fraud prod")
    await deploy_state(sandbox, 2, DeployState.AWAITING_APPROVAL)
    await console.execute("as @bob")
    await console.execute("react :thumbsup:")
    assert replies_to(sandbox, "U0BOB")[-1] == (
        ":thumbsup: is not a vote on deploy #2: approve with :white_check_mark: "
        "or reject with :x: (or the buttons)."
    )
    await console.execute("click Approve")
    assert replies_to(sandbox, "U0BOB")[-1] == (
        "You approved deploy #2 (fraud → prod): 1 of 2 approvals; it waits for 1 more."
    )
    await console.execute("as @carol")
    await console.execute("click Approve")
    assert replies_to(sandbox, "U0CAROL")[-1] == (
        "You approved deploy #2 (fraud → prod): approvals complete, it is starting."
    )
    await deploy_state(sandbox, 2, DeployState.SUCCEEDED)
    await console.execute("as @alice")
    await console.execute("/deploy fraud rollback stg")
    await deploy_state(sandbox, 3, DeployState.SUCCEEDED)
    card = card_of(sandbox, 3)
    assert "digest ``" not in card and "task definition revision 1" in card
    rollback = await sandbox.bot.store.deployments.get(3)
    assert rollback is not None and rollback.digest.startswith("sha256:")
    assert f"digest `{rollback.digest[:19]}" in card
