"""A bounded context of the tests' own, so libs/ is tested without any service: an organization writes
notes and edits them; each write is announced as NoteWritten on the `notes` stream. It has what every
service has (aggregate, table, unit of work with outbox and inbox, migrations, settings) and nothing more.
"""

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
