"""Persistence plumbing: engines, the unit of work with its outbox, migrations."""
