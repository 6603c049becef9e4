"""Use cases, one package per capability, and what they share (access checks, cards)."""
