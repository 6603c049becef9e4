"""Typed settings: the root model, a module per section, cross-section checks, errors, reference."""
