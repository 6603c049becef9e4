"""Kubernetes GPU training Jobs through the official asyncio client, one watch per namespace."""
