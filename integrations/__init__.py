"""One adapter per outside system, implementing the Protocols in bot.ports."""
