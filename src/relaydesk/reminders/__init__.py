"""Reminders: one message to a number every N minutes, until paused."""
