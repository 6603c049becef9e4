"""`python -m bot` is the `mlops-bot` command."""

from bot.entry import main

raise SystemExit(main())
