"""Automatic answers: opt-out keywords, human takeover, assistants, AI and classic auto-reply."""
