"""Store faults in one line: which store, what is wrong, what to do. No secrets, no traceback."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

FAULTS = (  # (words in the driver's message, what is wrong, what to do)
    (
        ("disk is full", "no space", "database or disk is full"),
        "its disk is full",
        "free space on that disk",
    ),
    (
        ("readonly", "read-only", "read only"),
        "it is read-only",
        "make the file and its directory writable by the bot",
    ),
    (
        ("not a database", "malformed", "file is encrypted"),
        "its file is corrupt",
        "restore it from a backup, or move it aside and run `mlops-bot migrate` for a new one",
    ),
    (
        ("unable to open database file", "fileexistserror", "notadirectoryerror"),
        "it cannot be opened",
        "check that its directory exists and the bot may write there",
    ),
    (
        ("database is locked", "busy"),
        "it is busy (another process holds its lock)",
        "stop the other process or retry",
    ),
    (
        (
            "connection refused",
            "connectionrefused",
            "connect call failed",
            "could not connect",
            "name or service not known",
            "timeout",
        ),
        "it does not answer",
        "check that the database server runs and the URL is right",
    ),
    (
        ("password authentication failed", "no pg_hba.conf entry"),
        "it refused the login",
        "check the user and password in the store URL",
    ),
)


def shown_url(url: str) -> str:
    """The store URL as it may be shown: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def reason(err: BaseException) -> tuple[str, str]:
    """What is wrong and what to do, read from a driver error (never its full text)."""
    cause = getattr(err, "orig", None) or err
    text = f"{type(cause).__name__} {cause}".lower()
    for needles, what, todo in FAULTS:
        if any(needle in text for needle in needles):
            return what, todo
    return f"it failed ({type(err).__name__})", "see the bot's log for details"


def describe(url: str, err: BaseException) -> str:
    what, todo = reason(err)
    return f"the store at {shown_url(url)}: {what}; {todo}"
