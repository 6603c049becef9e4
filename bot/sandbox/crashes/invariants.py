"""What must hold after every trial, however the bot was killed: each check returns one line
per violation, naming the thing that broke it."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from bot.sandbox.crashes.observe import DEPLOY_FINAL, RUN_FINAL, EcspressoRun, StoreView
from bot.sandbox.crashes.slack import SlackSide
from bot.sandbox.gitlab.server import GitLabStandIn
from bot.sandbox.slack import SlackStandIn

FINAL = "one final state per run and deploy"
NO_FALSE_FAILURE = "nothing fails that was fine"
ONE_PIPELINE = "one pipeline per run"
ONE_PER_COMMAND = "one run or deploy per command"
ONE_CARD = "one card per key"
ONE_REPLY = "one reply per acked command"
ONE_ECSPRESSO = "one ecspresso deploy per deploy id"
NO_LOCK = "no lock outliving its deploy"
NO_ORPHAN = "no process outliving the bot"
INVARIANTS = (
    FINAL,
    NO_FALSE_FAILURE,
    ONE_PIPELINE,
    ONE_PER_COMMAND,
    ONE_CARD,
    ONE_REPLY,
    ONE_ECSPRESSO,
    NO_LOCK,
    NO_ORPHAN,
)

Broken = dict[str, list[str]]


def final_states(view: StoreView) -> list[str]:
    found = [f"run {i} is {s!r}" for i, s in view.runs.items() if s not in RUN_FINAL]
    found += [f"run {i} succeeded but its results were never read" for i in view.unjudged]
    found += [
        f"deploy {i} ({env}) is {s!r}"
        for i, (env, s) in view.deploys.items()
        if s not in DEPLOY_FINAL
    ]
    return found


def false_failures(view: StoreView) -> list[str]:
    """Nothing in a trial is meant to fail: no fault is injected but the kill, and the
    stand-in's training reports metrics that pass the gate."""
    found = [f"run {i} {s}" for i, s in view.runs.items() if s in RUN_FINAL - {"succeeded"}]
    found += [f"run {i} failed its gate: {why}" for i, why in view.gate_failures.items()]
    found += [
        f"deploy {i} ({env}) {s}"
        for i, (env, s) in view.deploys.items()
        if s in DEPLOY_FINAL - {"succeeded"}
    ]
    return found


def pipelines_per_run(gitlab: GitLabStandIn) -> list[str]:
    runs = Counter(p.variables.get("MLOPS_RUN_ID") for p in gitlab.state.pipelines)
    return [f"run {run} has {n} pipelines" for run, n in runs.items() if run and n > 1]


def things_per_command(view: StoreView, side: SlackSide) -> list[str]:
    """No more runs than /train commands, no more deploys to an environment than /deploys to
    it (a command the bot ran again after a restart must find what its first pass made)."""
    sent = Counter(s.label for s in side.sent)
    found = []
    trains = sum(n for label, n in sent.items() if label.startswith("/train "))
    if len(view.runs) > trains:
        found.append(f"{len(view.runs)} runs for {trains} /train command(s)")
    envs = Counter(env for env, _ in view.deploys.values())
    for env, n in sorted(envs.items()):
        asked = sum(
            c
            for label, c in sent.items()
            if label.endswith(f" {env}") and label.startswith("/deploy ")
        )
        if n > asked:
            found.append(f"{n} deploys to {env} for {asked} /deploy command(s)")
    return found


def card_key(args: dict[str, Any]) -> str:
    """The card a chat.postMessage is for: its message metadata's key (and generation); a
    message without metadata is named by its channel, thread and title."""
    metadata = args.get("metadata")
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            metadata = None
    payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
    if isinstance(payload, dict) and payload.get("key"):
        generation = payload.get("generation", 1)
        return f"{payload['key']}" + (f"#{generation}" if generation != 1 else "")
    title = re.split(r":\s", str(args.get("text", "")), maxsplit=1)[0][:80]
    return f"{args.get('channel')}|{args.get('thread_ts') or ''}|{title}"


def cards_per_key(slack: SlackStandIn) -> list[str]:
    posted = Counter(
        card_key(call.args)
        for call in slack.calls_to("chat.postMessage")
        if isinstance(call.body, dict) and call.body.get("ok")
    )
    return [f"{key!r} posted {n} times" for key, n in sorted(posted.items()) if n > 1]


def replies_per_command(side: SlackSide) -> list[str]:
    found = []
    for sent in side.sent:
        n = len(side.replies(sent))
        if (sent.acked and n != 1) or n > 1:
            acked = "acked" if sent.acked else "not acked"
            said = " | ".join(str(r.get("text", ""))[:70] for r in side.replies(sent))
            found.append(f"{sent.label!r} ({acked}, sent {sent.tries}x) got {n} replies: {said}")
    return found


# Only exit 0 is a deploy that ran to its end. An orphan whose bot died (its output pipe gone)
# dies of SIGPIPE on its next log line, as ecspresso does (141 from the logging wrapper).
RAN_TO_END = (0,)


def ecspresso_deploys(
    runs: list[EcspressoRun], registered: dict[str, int], view: StoreView
) -> list[str]:
    """Per deploy id at most one ecspresso deploy ran to its end, and per environment ECS got
    no more task definitions than there were deploys (``registered``: env -> new revisions)."""
    done = Counter(r.deploy for r in runs if r.command == "deploy" and r.exit_code in RAN_TO_END)
    found = [
        f"deploy {d}: ecspresso deploy ran to its end {n} times" for d, n in done.items() if n > 1
    ]
    deploys = Counter(env for env, _ in view.deploys.values())
    found += [
        f"{env}: {n} task definitions registered for {deploys[env]} deploy(s)"
        for env, n in sorted(registered.items())
        if n > deploys[env]
    ]
    return found


def locks_left(view: StoreView) -> list[str]:
    found = []
    for model, env, holder in view.locks:
        match = re.fullmatch(r"deploy #(\d+)", holder)
        deploy = view.deploys.get(int(match.group(1))) if match else None
        if deploy is not None and deploy[1] in DEPLOY_FINAL:
            found.append(f"{model}/{env} still locked by {holder}, which is {deploy[1]}")
    return found


def check(
    view: StoreView,
    side: SlackSide,
    gitlab: GitLabStandIn,
    ecspresso: list[EcspressoRun],
    registered: dict[str, int],
    orphans: list[str],
) -> Broken:
    found = {
        FINAL: final_states(view),
        NO_FALSE_FAILURE: false_failures(view),
        ONE_PIPELINE: pipelines_per_run(gitlab),
        ONE_PER_COMMAND: things_per_command(view, side),
        ONE_CARD: cards_per_key(side.slack),
        ONE_REPLY: replies_per_command(side),
        ONE_ECSPRESSO: ecspresso_deploys(ecspresso, registered, view),
        NO_LOCK: locks_left(view),
        NO_ORPHAN: orphans,
    }
    return {name: lines for name, lines in found.items() if lines}
