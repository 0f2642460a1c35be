"""Backup and restore of the whole box in one archive: the database, the store's objects, the
config and the secrets of the data dir (docs/backup.md)."""

from appliance.backup.errors import BackupError

__all__ = ["BackupError"]
