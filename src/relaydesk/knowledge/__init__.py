"""Knowledge indexes: documents split into chunks, embedded, searched with FAISS.

`chunking` splits text, `embeddings` turns it into vectors (OpenAI or a local model),
`store` keeps named indexes on disk and searches them, `backup` exports and imports
them as ZIP files. No HTTP and no database here: the news and automation domains call in.
"""
