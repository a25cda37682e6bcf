"""Theory simulator: exact expected losses of one-pass SGD on power-law-spectrum linear regression
with a shared head and disjoint domain tails (see the project README)."""

__all__: list[str] = []
