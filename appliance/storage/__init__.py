"""Storage layer: SQLite through aiosqlite, numbered migrations, one repository per table group."""
