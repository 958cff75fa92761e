"""Use cases of the executor context, one per module."""
