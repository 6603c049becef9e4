"""The crash harness: the bot as its own process, killed at named points or at random."""
