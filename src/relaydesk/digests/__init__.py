"""Daily news digests: the recipients, when each digest is due, what it says, sending it.

A digest is the news index's answer for a recipient's mode or prompt (indexes.retrieval),
sent as a message once per local day; the original app's news_config.json is read and
written here too (configfile.py). The routes keep their /api/news and /news URLs.
"""
