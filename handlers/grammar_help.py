"""Usage text for /train and /deploy, and the token-level rules both grammars share.

Everything here is pure. ``handlers.parsing`` re-exports ``usage`` and ``is_valid_ref``.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from bot.errors import UserInputError
from bot.intents import Help

MAX_ECHO = 40  # never echo more of a user's token than this
_NUMBER = re.compile(r"#?([0-9]{1,12})")
_PERCENT = re.compile(r"([0-9]{1,3})%?")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_MAX_REASON = 300
_T = TypeVar("_T")
_HEX_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")

_USAGE = {
    "train": "\n".join(
        [
            "*`/train`: start and follow training runs*",
            "• `/train <model> [ref=<git ref>] [dataset=<version>] [gpus=<n>] [key=value ...]`"
            " start a run; other `key=value` pairs are passed on as parameters",
            "• `/train <model> status <run>` show a run (`42` or `#42`)",
            "• `/train <model> cancel <run>` cancel a run",
            "• `/train <model> logs <run>` show the end of a run's log",
            "• `/train list [model] [more | page=<n>]` list active and recent runs, a page at a"
            " time",
            "• `/train gpus` show free and used GPUs",
            "• `/train help [topic]` show this help",
        ]
    ),
    "deploy": "\n".join(
        [
            "*`/deploy`: ship, compare, roll back and split traffic*",
            '• `/deploy <model> <env> [run=<id> | image=<tag|digest>] [force reason="..."]` deploy',
            "• `/deploy <model> diff <env> [run=<id> | image=<tag|digest>]` what would change",
            "• `/deploy <model> rollback <env> [to=<deploy id>]` restore an earlier deploy",
            "• `/deploy <model> history <env> [more | page=<n>]` list past deploys, a page at a"
            " time",
            "• `/deploy <model> status [env]` show what runs where",
            "• `/deploy <model> health <env>` SLOs, drift, accuracy and open incidents",
            '• `/deploy <model> lock <env> reason="..."` stop deploys to an environment',
            "• `/deploy <model> unlock <env>` allow deploys again",
            "• `/deploy <model> ab <env> start run=<id> [weight=<pct>]` start an A/B split",
            "• `/deploy <model> ab <env> set <pct>` move traffic to B (`10` or `10%`)",
            "• `/deploy <model> ab <env> promote|abort|status` finish or inspect the split",
            '• `/deploy freeze reason="..."` stop all deploys',
            "• `/deploy unfreeze` allow deploys again",
            "• `/deploy help [topic]` show this help",
        ]
    ),
}


def usage(command: str, topic: str | None = None) -> str:
    """Usage of ``train`` or ``deploy``, one line per subcommand in Slack mrkdwn; with a
    ``topic`` (``ab``, ``rollback``, ...) only the lines about it."""
    try:
        full = _USAGE[command]
    except KeyError:
        raise ValueError(f"no usage for command {command!r}") from None
    if not topic:
        return full
    heading, *lines = full.split("\n")
    word = topic.split()[0].lower()
    about = [line for line in lines if word in re.findall(r"[a-z]+", line.split("`")[1])]
    if not about:
        return f"No help topic `{show(word)}`; here is everything.\n{full}"
    return "\n".join([heading, *about])


def show(token: str) -> str:
    """A user's token made safe to echo inside backticks: printable, no backticks, <= 40 chars,
    and with Slack's control characters escaped so an echo can never become a mention."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in token.replace("`", ""))
    if not clean:
        return '""'
    short = clean if len(clean) <= MAX_ECHO else clean[: MAX_ECHO - 1] + "…"
    return short.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def choices(names: Iterable[str]) -> str:
    """``a``, ``b``, ``c`` for a message, or "none" when there is nothing to choose from."""
    return ", ".join(f"`{name}`" for name in names) or "none"


@dataclass(frozen=True)
class Ctx:
    """Where in the grammar the parser is, so an error can point at the right help topic."""

    command: str  # "train" or "deploy"
    topic: str | None = None

    def at(self, topic: str) -> Ctx:
        return Ctx(self.command, topic)

    @property
    def where(self) -> str:
        return f"`/{self.command} {self.topic}`" if self.topic else f"`/{self.command}`"

    def fail(self, message: str) -> NoReturn:
        topic = f" {self.topic}" if self.topic else ""
        raise UserInputError(f"{message} Try `/{self.command} help{topic}`.")


def is_valid_ref(ref: str) -> bool:
    """A 7-40 char hex sha, or one ref name by ``git check-ref-format --allow-onelevel`` rules.

    Stricter than git in two ways: no leading ``-`` (it could pass for an option) and no
    non-printable or whitespace characters beyond ASCII either.
    """
    if _HEX_SHA.fullmatch(ref):
        return True
    if not 0 < len(ref) <= 255 or ref == "@" or _REF_FORBIDDEN.search(ref):
        return False
    if ref.startswith(("-", "/")) or ref.endswith(("/", ".")):
        return False
    if not all(ch.isprintable() and not ch.isspace() for ch in ref):
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/"))


# ---- text -> tokens ---------------------------------------------------------------------------


def _normalize(text: str) -> str:
    """Undo Slack's HTML escaping and smart quotes; non-ASCII spaces become plain ones."""
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = text.translate(_SMART_QUOTES)
    return "".join(" " if ch.isspace() and not ch.isascii() else ch for ch in text)


def help_or_tokens(text: str, ctx: Ctx) -> Help | list[str]:
    """Help for empty text or ``help ...`` (even with stray quotes), else the shell-like tokens."""
    text = _normalize(text)
    words = text.split()
    if not words or words[0] == "help":
        return Help(ctx.command, " ".join(words[1:]) or None)
    try:
        tokens = shlex.split(text)
    except ValueError:
        ctx.fail('The command has an unbalanced quote or a trailing backslash; close every `"`.')
    return tokens or Help(ctx.command)


# ---- options and values ---------------------------------------------------------------------


def no_more(args: Sequence[str], ctx: Ctx) -> None:
    """Reject anything left over once a subcommand has all it takes."""
    if args:
        ctx.fail(f"Unexpected `{show(args[0])}`; {ctx.where} takes no more arguments there.")


def options(
    args: Sequence[str], ctx: Ctx, keys: Collection[str] | None, flags: Collection[str] = ()
) -> tuple[dict[str, str], set[str]]:
    """``key=value`` options and bare flags, each at most once; ``keys=None`` allows any key."""
    valid = "`key=value` options" if keys is None else choices([*(f"{k}=" for k in keys), *flags])
    values: dict[str, str] = {}
    seen: set[str] = set()
    for token in args:
        name, sep, value = token.partition("=")
        if token not in flags and name and sep and not value:
            ctx.fail(f"`{show(name)}=` needs a value after the `=` (e.g. `{show(name)}=...`).")
        if token not in flags and not (name and sep and value):
            ctx.fail(f"Expected `key=value` but got `{show(token)}`; valid here: {valid}.")
        if token not in flags and keys is not None and name not in keys:
            ctx.fail(f"Unknown option `{show(name)}=` for {ctx.where}; valid: {valid}.")
        if name in seen:
            ctx.fail(f"`{show(name)}` is given twice; give it once.")
        seen.add(name)
        if sep:
            values[name] = value
    return values, seen & set(flags)


def matching(value: str, pattern: re.Pattern[str], what: str, expected: str, ctx: Ctx) -> str:
    if not pattern.fullmatch(value):
        ctx.fail(f"Invalid {what} `{show(value)}`; expected {expected}.")
    return value


def number(token: str, what: str, ctx: Ctx) -> int:
    """A run or deploy number: positive, written ``42`` or ``#42``."""
    match = _NUMBER.fullmatch(token)
    if match is None or int(match.group(1)) < 1:
        ctx.fail(f"Invalid {what} `{show(token)}`; expected a positive number like `42` or `#42`.")
    return int(match.group(1))


MAX_PAGE = 10_000


def is_paging(word: str) -> bool:
    """``more`` or ``page=<n>``: the tokens that choose a page of a listing."""
    return word == "more" or word.startswith("page=")


def page_of(args: Sequence[str], ctx: Ctx) -> int:
    """The page a listing's trailing tokens ask for: none is page 1, ``more`` is page 2,
    ``page=<n>`` is page n (1 to 10000)."""
    for word in args:
        if not is_paging(word):
            ctx.fail(f"Unexpected `{show(word)}`; {ctx.where} takes `more` or `page=<n>` there.")
    values, flags = options(args, ctx, keys=("page",), flags=("more",))
    if "more" in flags and "page" in values:
        ctx.fail("Give either `more` or `page=<n>`, not both.")
    if "more" in flags:
        return 2
    if "page" not in values:
        return 1
    token = values["page"]
    if not token.isascii() or not token.isdigit() or not 1 <= int(token[:6]) <= MAX_PAGE:
        ctx.fail(f"Invalid page `{show(token)}`; expected a whole number from 1 to {MAX_PAGE}.")
    return int(token)


def percent(token: str, ctx: Ctx) -> int:
    match = _PERCENT.fullmatch(token)
    if match is None or int(match.group(1)) > 100:
        ctx.fail(f"Invalid weight `{show(token)}`; expected 0 to 100, like `10` or `10%`.")
    return int(match.group(1))


def free_text(value: str | None, ctx: Ctx) -> str:
    """Free text saying why: one line, 1..300 characters, no control or bidi characters."""
    text = (value or "").strip()
    if not text:
        ctx.fail(f'{ctx.where} needs `reason="..."` saying why.')
    if len(text) > _MAX_REASON:
        ctx.fail(f"The reason has {len(text)} characters; keep it to {_MAX_REASON}.")
    if any(unicodedata.category(ch) in _UNSAFE_CATEGORIES or ch in _BIDI_CONTROLS for ch in text):
        ctx.fail("The reason must be one line of text without control characters.")
    return text


def optional(value: str | None, check: Callable[[str], _T]) -> _T | None:
    """Check an option only when it was given."""
    return None if value is None else check(value)
