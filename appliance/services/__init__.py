"""Service layer: the logic. No SQL and no framework objects here."""
