"""Knowledge indexes: documents split into chunks, embedded, searched with FAISS.

`chunking` splits text, `embeddings` turns it into vectors (OpenAI or a local model),
`store` keeps named indexes on disk and searches them, `backup` exports and imports
them as ZIP files. No HTTP and no database here: relaydesk.indexes adds those (audit log,
API, panel, retrieval); it, news (index builds) and automation call in, never the reverse.
"""
