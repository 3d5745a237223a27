"""The ground every layer stands on: settings, database, tasks, errors, audit, secrets."""
