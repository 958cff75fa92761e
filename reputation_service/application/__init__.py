"""Use cases of the reputation context, one per module."""
