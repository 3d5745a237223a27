"""The business's own documents in the knowledge base: price lists, FAQs, opening hours.

A document belongs to a news category as fetched articles do, so index builds, the test
box and grounded answers include it. Its text is extracted once, when it is uploaded
(extract.py), into parts that keep their page or row, so an answer can cite them.
"""
