"""Properties of handlers.parsing: total over any text; every intent survives render -> parse."""

from __future__ import annotations

import html
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from typing import Any, get_args

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.errors import UserInputError
from bot.intents import (
    AbAction,
    AbCommand,
    DeployDiff,
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
from handlers.parsing import Catalog, is_valid_ref, parse_deploy, parse_train

FAST = settings(max_examples=300, deadline=None)
CATALOG = Catalog({"fraud": ["stg", "prod"], "churn-v2": ["dev", "stg", "prod"], "reco.x": ["qa"]})
ENVS = sorted({env for envs in CATALOG.models.values() for env in envs})
KEYWORDS = [
    "help",
    "list",
    "gpus",
    "status",
    "cancel",
    "logs",
    "diff",
    "rollback",
    "history",
    "lock",
    "unlock",
    "ab",
    "start",
    "set",
    "promote",
    "abort",
    "freeze",
    "unfreeze",
    "force",
]
KEYS = ["ref", "dataset", "gpus", "run", "image", "reason", "to", "weight", "lr", "", "k"]
ODD = "\"'\u201c\u201d\u2018\u2019`\\#=&;<>|$()%@{}[]*?~^:/.\n\t\x00\x7f\u00a0\u202e\u200d é漢🚀"
REF_CHARS = "aaabbb01//..-@{}~^:?*[\\ \x01\x7fé"
PARSERS: list[tuple[str, Callable[[str, Catalog], object], tuple[type, ...]]] = [
    ("train", parse_train, get_args(TrainIntent)),
    ("deploy", parse_deploy, get_args(DeployIntent)),
]


def slack_escape(text: str) -> str:
    """What Slack does to slash-command text before sending it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(*tokens: str) -> str:
    return slack_escape(" ".join(shlex.quote(token) for token in tokens))


def check_total(text: str) -> None:
    """Both parsers return an intent or raise a well-formed UserInputError, nothing else."""
    long_tokens = [token for token in text.split() if len(token) > 40]
    for command, parse, intent_types in PARSERS:
        try:
            result = parse(text, CATALOG)
        except UserInputError as err:
            message = str(err)
            assert re.search(rf"Try `/{command} help( [a-z]+)?`\.$", message), message
            assert message.count("`") % 2 == 0
            assert all(len(html.unescape(q)) <= 40 for q in re.findall(r"`([^`]*)`", message))
            assert not any(token in message for token in long_tokens)
        else:
            assert isinstance(result, intent_types)


# ---- totality -----------------------------------------------------------------------------------


@FAST
@given(st.text())
def test_any_text_gives_an_intent_or_a_user_input_error(text: str) -> None:
    check_total(text)


@FAST
@given(st.text(alphabet=st.sampled_from(ODD + "abcfrau=1"), max_size=60))
def test_text_full_of_quotes_and_controls_is_handled(text: str) -> None:
    check_total(text)


_value = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.sampled_from(ODD + "az09.-_"), max_size=8),
    st.from_regex(r"#?[0-9]{1,4}%?", fullmatch=True),
)
_token = st.one_of(
    st.sampled_from([*CATALOG.models, *ENVS, *KEYWORDS]),
    st.builds(lambda key, value: f"{key}={value}", st.sampled_from(KEYS), _value),
    _value,
)


@FAST
@given(st.lists(_token, max_size=8), st.booleans())
def test_grammar_shaped_token_lists_are_handled(tokens: list[str], quote: bool) -> None:
    check_total(render(*tokens) if quote else " ".join(tokens))


# ---- round trips --------------------------------------------------------------------------------

_models = st.sampled_from(sorted(CATALOG.models))
_ids = st.integers(1, 10**12 - 1)
_pcts = st.integers(0, 100)
_refs = st.one_of(
    st.from_regex(r"[0-9a-f]{7,40}", fullmatch=True),
    st.text(alphabet=st.sampled_from("abcXYZ019/._-@{}!#'\"<>&é"), min_size=1, max_size=40).filter(
        is_valid_ref
    ),
)
_param_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", fullmatch=True).filter(
    lambda key: key not in {"ref", "dataset", "gpus"}
)
_reason_chars = st.characters(
    blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs"),
    blacklist_characters="\u201c\u201d\u2018\u2019"  # smart quotes become plain ones
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",  # bidi controls are refused
)
_reasons = (
    st.one_of(
        st.text(alphabet=st.sampled_from("ab &<>;'\"\\`#=$|!*\u00e9\u6f22"), max_size=30),
        st.text(alphabet=_reason_chars | st.just(" "), max_size=300),
    )
    .map(str.strip)
    .filter(bool)
)
_images = st.one_of(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True),
    st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True),
)


def _run_token(run: int, hashed: bool) -> str:
    return f"#{run}" if hashed else str(run)


@st.composite
def train_starts(draw: st.DrawFn) -> TrainStart:
    return TrainStart(
        draw(_models),
        ref=draw(st.none() | _refs),
        dataset=draw(st.none() | st.from_regex(r"[A-Za-z0-9_.:/+-]{1,128}", fullmatch=True)),
        gpus=draw(st.none() | st.integers(1, 64)),
        params=draw(
            st.dictionaries(
                _param_keys,
                st.from_regex(r"[A-Za-z0-9_.,:/+=@%-]{1,256}", fullmatch=True),
                max_size=4,
            )
        ),
    )


def render_train_start(intent: TrainStart, order: Callable[[list[str]], list[str]]) -> str:
    options = {"ref": intent.ref, "dataset": intent.dataset, "gpus": intent.gpus, **intent.params}
    tokens = [f"{key}={value}" for key, value in options.items() if value is not None]
    return render(intent.model, *order(tokens))


@FAST
@given(train_starts(), st.randoms())
def test_train_start_round_trips(intent: TrainStart, rnd: Any) -> None:
    text = render_train_start(intent, lambda tokens: rnd.sample(tokens, len(tokens)))
    assert parse_train(text, CATALOG) == intent


@FAST
@given(st.sampled_from([TrainStatus, TrainCancel, TrainLogs]), _models, _ids, st.booleans())
def test_train_run_commands_round_trip(kind: Any, model: str, run: int, hashed: bool) -> None:
    verb = {TrainStatus: "status", TrainCancel: "cancel", TrainLogs: "logs"}[kind]
    assert parse_train(render(model, verb, _run_token(run, hashed)), CATALOG) == kind(model, run)


@given(st.none() | _models)
def test_train_list_round_trips(model: str | None) -> None:
    assert parse_train(render("list", *([model] if model else [])), CATALOG) == TrainList(model)
    assert parse_train("gpus", CATALOG) == TrainGpus()


@st.composite
def model_envs(draw: st.DrawFn) -> tuple[str, str]:
    model = draw(_models)
    return model, draw(st.sampled_from(list(CATALOG.models[model])))


@st.composite
def deploy_intents(draw: st.DrawFn) -> tuple[DeployIntent, list[str]]:
    """A random /deploy intent and the tokens that ask for it (options in a random order)."""
    model, env = draw(model_envs())
    run, image, hashed = draw(st.none() | _ids), draw(st.none() | _images), draw(st.booleans())
    run_or_image = draw(st.sampled_from(["run", "image", "neither"]))
    target = {
        "run": [f"run={_run_token(run, hashed)}"] if run else [],
        "image": [f"image={image}"] if image else [],
        "neither": [],
    }[run_or_image]
    run = run if run_or_image == "run" else None
    image = image if run_or_image == "image" else None
    reason = draw(_reasons)
    forced = draw(st.permutations([*target, "force", f"reason={reason}"]))
    to = [f"to={run}"] if run else []
    choices: list[tuple[DeployIntent, list[str]]] = [
        (DeployStart(model, env, run, image), [model, env, *target]),
        (DeployStart(model, env, run, image, reason), [model, env, *forced]),
        (DeployDiff(model, env, run, image), [model, "diff", env, *target]),
        (DeployRollback(model, env, run), [model, "rollback", env, *to]),
        (DeployHistory(model, env), [model, "history", env]),
        (DeployStatus(model), [model, "status"]),
        (DeployStatus(model, env), [model, "status", env]),
        (LockEnv(model, env, reason), [model, "lock", env, f"reason={reason}"]),
        (UnlockEnv(model, env), [model, "unlock", env]),
        (Freeze(reason), ["freeze", f"reason={reason}"]),
        (Unfreeze(), ["unfreeze"]),
        (Help("deploy", "ab"), ["help", "ab"]),
    ]
    return draw(st.sampled_from(choices + ab_commands(draw, model, env)))


def ab_commands(draw: st.DrawFn, model: str, env: str) -> list[tuple[DeployIntent, list[str]]]:
    run, weight, percent = draw(_ids), draw(st.none() | _pcts), draw(st.booleans())
    weights = [f"weight={weight}{'%' if percent else ''}"] if weight is not None else []
    simple = [AbAction.PROMOTE, AbAction.ABORT, AbAction.STATUS]
    return [
        (
            AbCommand(model, env, AbAction.START, run=run, weight=weight),
            [model, "ab", env, "start", *draw(st.permutations([f"run={run}", *weights]))],
        ),
        (
            AbCommand(model, env, AbAction.SET, weight=weight or 0),
            [model, "ab", env, "set", f"{weight or 0}{'%' if percent else ''}"],
        ),
        *((AbCommand(model, env, action), [model, "ab", env, action.value]) for action in simple),
    ]


@FAST
@given(deploy_intents())
def test_deploy_intents_round_trip(case: tuple[DeployIntent, list[str]]) -> None:
    intent, tokens = case
    assert parse_deploy(render(*tokens), CATALOG) == intent


# ---- subcommand shapes with junk in the slots --------------------------------------------------

# A capital letter is a slot (see _slots); everything else is literal.
TEMPLATES = [
    "M ref=R dataset=D gpus=G K=V",
    "M status N",
    "M cancel N",
    "M logs N",
    "list M",
    "gpus",
    "M E run=N image=I force reason=T",
    "M diff E run=N image=I",
    "M rollback E to=N",
    "M history E",
    "M status E",
    "M lock E reason=T",
    "M unlock E",
    "freeze reason=T",
    "unfreeze",
    "M ab E start run=N weight=P",
    "M ab E set P",
    "M ab E promote",
    "M ab E abort",
    "M ab E status",
    "help X",
]


def _slots() -> dict[str, st.SearchStrategy[str]]:
    numbers = st.integers(-3, 10**13).map(str)
    return {
        "M": st.sampled_from(list(CATALOG.models)),
        "E": st.sampled_from(ENVS),
        "N": numbers | numbers.map("#{}".format),
        "R": _refs,
        "D": st.text(max_size=130),
        "G": st.integers(-1, 100).map(str),
        "K": _param_keys,
        "V": st.text(max_size=260),
        "I": _images,
        "T": _reasons,
        "P": numbers | numbers.map("{}%".format),
        "X": _value,
    }


@st.composite
def templated(draw: st.DrawFn) -> list[str]:
    """A subcommand's shape, slots filled with valid or junk values, some tokens left out."""
    slots = _slots()

    def fill(slot: re.Match[str]) -> str:
        valid = slots[slot.group()]
        return draw(valid | _value if draw(st.booleans()) else valid)

    words = draw(st.sampled_from(TEMPLATES)).split()
    tokens = [re.sub(r"[A-Z]", fill, word) for word in words if draw(st.integers(0, 9))]
    return tokens + draw(st.lists(_token, max_size=1))


@FAST
@given(templated(), st.booleans())
def test_templated_commands_are_handled(tokens: list[str], quote: bool) -> None:
    check_total(render(*tokens) if quote else " ".join(tokens))


# ---- refs against git itself --------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(REF_CHARS), min_size=1, max_size=12))
def test_is_valid_ref_agrees_with_git(ref: str) -> None:
    assume(not ref.startswith("-"))  # stricter on purpose: could pass for an option
    git = subprocess.run(
        ["git", "check-ref-format", "--allow-onelevel", ref], capture_output=True, check=False
    )
    assert is_valid_ref(ref) == (git.returncode == 0)
