"""Language models: one client for OpenAI-compatible servers and a local model, text helpers."""
