"""The console's `monitor check <model> <env>` line: run one monitoring check now, as the
monitoring loop would at its next interval, and say what it found; `monitor digest <model>
<env>`: share the daily digest now (and count it as today's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.services.monitoring.monitor import Monitor

USAGE = "monitor check|digest <model> <env>"


def find_monitor(bot: Any) -> Monitor | None:
    """The running bot's monitoring loop (none when no model has `monitoring`)."""
    loop = dict(bot.followers).get("monitoring")
    found = getattr(loop, "__self__", None)
    return found if isinstance(found, Monitor) else None


class MonitorLine:
    """Runs the line against the bot ``current()`` returns (a restart builds a new one)."""

    def __init__(self, current: Callable[[], Any]) -> None:
        self.current = current

    async def __call__(self, rest: str) -> str:
        words = rest.split()
        if len(words) != 3 or words[0] not in ("check", "digest"):
            raise ValueError(f"usage: {USAGE}")
        verb, model, env = words
        monitor = find_monitor(self.current())
        if monitor is None:
            raise ValueError("no model has a `monitoring` section in this config")
        watched = {(m, e) for m, e, _, _ in monitor.watched()}
        if (model, env) not in watched:
            known = ", ".join(f"{m} {e}" for m, e in sorted(watched))
            raise ValueError(f"{model}/{env} is not monitored; monitored: {known}")
        if verb == "digest":
            return await digest(monitor, model, env)
        result = await monitor.check(model, env)
        said = ", ".join(f"{f.title} {f.status}" for f in result.findings) or "nothing to check"
        breaches = len(result.breaches)
        return f"(monitoring check of {model}/{env}: {said}; {breaches} breached)"


async def digest(monitor: Monitor, model: str, env: str) -> str:
    digests = monitor.digests
    if digests is None:
        raise ValueError("this bot sends no digests")
    file_id = await digests.send(model, env, digests.clock().date().isoformat(), again=True)
    return f"(digest of {model}/{env} shared as file {file_id})"
