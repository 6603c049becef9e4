"""`python -m bot` is the `mlops-bot` command."""

from bot.cli import main

raise SystemExit(main())
