"""Block Kit builders: pure functions of domain objects, no I/O.

They live in bot/ (not handlers/) because background work renders cards too, not only the edge.
"""
