"""Text of the /train and /deploy slash commands -> typed intents (pure, no I/O).

``parse_train`` and ``parse_deploy`` raise only ``UserInputError``. Its message names the offending
token (sanitized, at most 40 characters), says what would be valid and ends with a help hint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from bot.intents import (
    AbAction,
    AbCommand,
    DeployDiff,
    DeployHealth,
    DeployHistory,
    DeployIntent,
    DeployRollback,
    DeployStart,
    DeployStatus,
    Freeze,
    Help,
    LockEnv,
    TrainCancel,
    TrainGpus,
    TrainIntent,
    TrainList,
    TrainLogs,
    TrainStart,
    TrainStatus,
    Unfreeze,
    UnlockEnv,
)
from handlers.grammar_help import (
    Ctx,
    choices,
    free_text,
    help_or_tokens,
    is_paging,
    is_valid_ref,
    matching,
    no_more,
    number,
    optional,
    options,
    page_of,
    percent,
    show,
    usage,
)

__all__ = ["Catalog", "is_valid_ref", "parse_deploy", "parse_train", "usage"]

_PARAM_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_PARAM_VALUE = re.compile(r"[A-Za-z0-9_.,:/+=@%-]{1,256}")
_DATASET = re.compile(r"[A-Za-z0-9_.:/+-]{1,128}")
_IMAGE = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|(?:[a-z0-9][a-z0-9._/-]{0,255}@)?sha256:[0-9a-f]{64}"
)
_GPUS = re.compile(r"[0-9]{1,2}")
_MAX_GPUS = 64


@dataclass(frozen=True)
class Catalog:
    """What the configuration knows, for validation: model -> its environment names, in order."""

    models: Mapping[str, Sequence[str]]


# ---- shared checks ----------------------------------------------------------------------------


def _model(catalog: Catalog, token: str, ctx: Ctx) -> str:
    if token in catalog.models:
        return token
    names = sorted(catalog.models)
    known = f"configured models: {choices(names)}" if names else "no models are configured"
    lead = "Missing model name before" if "=" in token else "Unknown model"
    ctx.fail(f"{lead} `{show(token)}`; {known}.")


def _env(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> str:
    if not args:
        ctx.fail(f"{ctx.where} needs an environment of `{model}`: {choices(envs)}.")
    if args[0] not in envs:
        ctx.fail(
            f"Unknown environment `{show(args[0])}` for `{model}`; its environments: "
            f"{choices(envs)}."
        )
    return args[0]


# ---- /train -----------------------------------------------------------------------------------

_TRAIN_RUN: dict[str, Callable[[str, int], TrainIntent]] = {
    "status": TrainStatus,
    "cancel": TrainCancel,
    "logs": TrainLogs,
}


def parse_train(text: str, catalog: Catalog) -> TrainIntent:
    """Parse the text of ``/train``; ``usage("train")`` describes the grammar."""
    ctx = Ctx("train")
    tokens = help_or_tokens(text, ctx)
    if isinstance(tokens, Help):
        return tokens
    head, args = tokens[0], tokens[1:]
    if head == "list":
        at_list = ctx.at("list")
        named = args[0] if args and not is_paging(args[0]) else None
        model = optional(named, lambda m: _model(catalog, m, at_list))
        return TrainList(model, page=page_of(args[1:] if named else args, at_list))
    if head == "gpus":
        no_more(args, ctx.at("gpus"))
        return TrainGpus()
    model = _model(catalog, head, ctx)
    if args and args[0] in _TRAIN_RUN:
        return _train_run(model, args[0], args[1:], ctx.at(args[0]))
    return _train_start(model, args, ctx)


def _train_run(model: str, action: str, args: Sequence[str], ctx: Ctx) -> TrainIntent:
    if not args:
        ctx.fail(f"{ctx.where} needs a run number, like `/train {model} {action} 42`.")
    no_more(args[1:], ctx)
    return _TRAIN_RUN[action](model, number(args[0], "run", ctx))


def _train_start(model: str, args: Sequence[str], ctx: Ctx) -> TrainStart:
    if args and "=" not in args[0]:
        ctx.fail(
            f"`{show(args[0])}` is not a subcommand of `/train {model}`; valid: "
            f"{choices(_TRAIN_RUN)} with a run number, or `key=value` options."
        )
    values, _ = options(args, ctx, keys=None)
    ref, dataset, gpus = (values.pop(key, None) for key in ("ref", "dataset", "gpus"))
    expected = "1-128 of `A-Za-z0-9_.:/+-`"
    return TrainStart(
        model,
        ref=optional(ref, lambda v: _ref(v, ctx)),
        dataset=optional(dataset, lambda v: matching(v, _DATASET, "dataset", expected, ctx)),
        gpus=optional(gpus, lambda v: _gpus(v, ctx)),
        params=_params(values, ctx),
    )


def _ref(value: str, ctx: Ctx) -> str:
    if not is_valid_ref(value):
        ctx.fail(f"Invalid ref `{show(value)}`; expected a branch, tag or commit sha like `main`.")
    return value


def _gpus(value: str, ctx: Ctx) -> int:
    if not _GPUS.fullmatch(value) or not 1 <= int(value) <= _MAX_GPUS:
        ctx.fail(f"Invalid gpus `{show(value)}`; expected a whole number from 1 to {_MAX_GPUS}.")
    return int(value)


def _params(values: dict[str, str], ctx: Ctx) -> dict[str, str]:
    for key, value in values.items():
        matching(key, _PARAM_KEY, "parameter name", "a letter or `_`, then `A-Za-z0-9_.-`", ctx)
        expected = "1-256 of `A-Za-z0-9_.,:/+=@%-`"
        matching(value, _PARAM_VALUE, f"`{show(key)}=` value", expected, ctx)
    return values


# ---- /deploy ----------------------------------------------------------------------------------


def parse_deploy(text: str, catalog: Catalog) -> DeployIntent:
    """Parse the text of ``/deploy``; ``usage("deploy")`` describes the grammar."""
    ctx = Ctx("deploy")
    tokens = help_or_tokens(text, ctx)
    if isinstance(tokens, Help):
        return tokens
    head, args = tokens[0], tokens[1:]
    if head == "freeze":
        values, _ = options(args, ctx.at("freeze"), keys=("reason",))
        return Freeze(free_text(values.get("reason"), ctx.at("freeze")))
    if head == "unfreeze":
        no_more(args, ctx.at("unfreeze"))
        return Unfreeze()
    model = _model(catalog, head, ctx)
    envs = catalog.models[model]
    if args and args[0] in _DEPLOY_SUBCOMMANDS:
        return _DEPLOY_SUBCOMMANDS[args[0]](model, envs, args[1:], ctx.at(args[0]))
    if args and args[0] in envs:
        return _deploy_start(model, args[0], args[1:], ctx)
    _unknown_subcommand(model, envs, args, ctx)


def _unknown_subcommand(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> NoReturn:
    valid = f"an environment ({choices(envs)}) or a subcommand ({choices(_DEPLOY_SUBCOMMANDS)})"
    if not args:
        ctx.fail(f"`/deploy {model}` needs {valid}.")
    ctx.fail(f"`{show(args[0])}` is not valid after `/deploy {model}`; expected {valid}.")


def _deploy_start(model: str, env: str, args: Sequence[str], ctx: Ctx) -> DeployStart:
    values, flags = options(args, ctx, keys=("run", "image", "reason"), flags=("force",))
    run, image = _run_or_image(values, ctx)
    reason = values.get("reason")
    if "force" in flags and reason is None:
        ctx.fail('`force` needs `reason="..."` saying why.')
    if reason is not None and "force" not in flags:
        ctx.fail("`reason=` only goes with `force`; add `force` or drop the reason.")
    force_reason = optional(reason, lambda v: free_text(v, ctx))
    return DeployStart(model, env, run=run, image=image, force_reason=force_reason)


def _run_or_image(values: Mapping[str, str], ctx: Ctx) -> tuple[int | None, str | None]:
    run, image = values.get("run"), values.get("image")
    if run is not None and image is not None:
        ctx.fail("Give either `run=` or `image=`, not both.")
    expected = (
        "an image tag like `v1.2.3`, a digest `sha256:<64 hex>` or `<repository>@sha256:<64 hex>`"
    )
    return (
        optional(run, lambda v: number(v, "run", ctx)),
        optional(image, lambda v: matching(v, _IMAGE, "image", expected, ctx)),
    )


def _deploy_diff(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> DeployDiff:
    env = _env(model, envs, args, ctx)
    values, _ = options(args[1:], ctx, keys=("run", "image"))
    run, image = _run_or_image(values, ctx)
    return DeployDiff(model, env, run=run, image=image)


def _deploy_rollback(
    model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx
) -> DeployRollback:
    env = _env(model, envs, args, ctx)
    values, _ = options(args[1:], ctx, keys=("to",))
    to = optional(values.get("to"), lambda v: number(v, "deploy id", ctx))
    return DeployRollback(model, env, to=to)


def _deploy_history(
    model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx
) -> DeployHistory:
    env = _env(model, envs, args, ctx)
    return DeployHistory(model, env, page=page_of(args[1:], ctx))


def _deploy_health(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> DeployHealth:
    env = _env(model, envs, args, ctx)
    no_more(args[1:], ctx)
    return DeployHealth(model, env)


def _deploy_status(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> DeployStatus:
    if not args:
        return DeployStatus(model)
    env = _env(model, envs, args, ctx)
    no_more(args[1:], ctx)
    return DeployStatus(model, env)


def _lock(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> LockEnv:
    env = _env(model, envs, args, ctx)
    values, _ = options(args[1:], ctx, keys=("reason",))
    return LockEnv(model, env, free_text(values.get("reason"), ctx))


def _unlock(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> UnlockEnv:
    env = _env(model, envs, args, ctx)
    no_more(args[1:], ctx)
    return UnlockEnv(model, env)


def _ab(model: str, envs: Sequence[str], args: Sequence[str], ctx: Ctx) -> AbCommand:
    env = _env(model, envs, args, ctx)
    actions = [action.value for action in AbAction]
    if len(args) < 2 or args[1] not in actions:
        got = f"`{show(args[1])}` is not an A/B action" if len(args) > 1 else "Missing A/B action"
        ctx.fail(f"{got}; valid: {choices(actions)}.")
    action, rest = AbAction(args[1]), args[2:]
    if action is AbAction.START:
        values, _ = options(rest, ctx, keys=("run", "weight"))
        if "run" not in values:
            ctx.fail("`ab start` needs `run=<id>`, the run to send B traffic to.")
        weight = optional(values.get("weight"), lambda v: percent(v, ctx))
        return AbCommand(model, env, action, run=number(values["run"], "run", ctx), weight=weight)
    if action is AbAction.SET:
        if not rest:
            ctx.fail("`ab set` needs a weight for B, like `10` or `10%`.")
        no_more(rest[1:], ctx)
        return AbCommand(model, env, action, weight=percent(rest[0], ctx))
    no_more(rest, ctx)
    return AbCommand(model, env, action)


_DEPLOY_SUBCOMMANDS: dict[str, Callable[[str, Sequence[str], Sequence[str], Ctx], DeployIntent]] = {
    "diff": _deploy_diff,
    "rollback": _deploy_rollback,
    "history": _deploy_history,
    "status": _deploy_status,
    "health": _deploy_health,
    "lock": _lock,
    "unlock": _unlock,
    "ab": _ab,
}
