"""Backup and restore of a whole installation: `relaydesk backup`, `relaydesk restore`.

One `.tar.gz` holds a consistent snapshot of the database (SQLite's online backup, or
`pg_dump` on PostgreSQL), the files of DATA_DIR that matter (the secret key, the
sandbox's credentials and state, media, knowledge indexes, news files, voice-bot
archives, the webhook spool) and, last, `manifest.json`: what is inside, with the size
and SHA-256 of every file. A restore checks the whole archive against its manifest
before anything is put in place, and only into an empty data directory (and, on
PostgreSQL, an empty database). `tasks` writes one archive a day into BACKUP_DIR.
"""
