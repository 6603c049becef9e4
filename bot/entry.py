"""The `mlops-bot` command's first module: it holds the cyclic garbage collector off while the
bot's modules load, since everything they allocate (modules, classes, tables, models) lives as
long as the process and a collection there only costs start time; `bot.cli.loaded` turns it
back on."""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    from bot.cli import main as run

    return run()
