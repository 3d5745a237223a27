"""Knowledge indexes as a domain: manage them (audited), back them up, ask them.

Stands on the knowledge integration (chunking, embeddings, FAISS on disk) and adds the
database, the audit log, the API and the panel. News builds indexes from its articles;
digests and automation ask them; none of those is imported here.
"""
