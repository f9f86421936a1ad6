"""Experience-store latency with 10,000 stored experiences, text and features embeddings.

    .venv/bin/python bench/memory_bench.py [--n 10000] [--probes 50] [--dir DIR]

Fills a fresh store per embedding in batches (not timed; for the text store, 500 distinct
situations are embedded and the 10,000 stored vectors are those plus small Gaussian noise,
renormalized, since embedding 10,000 texts takes minutes on 2 cores), then times `add` of one
experience and `search(k=5)` one by one (each includes embedding the text for the text
store) and prints the mean and p95 in ms. Target: each under 100 ms.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_memory import KINDS, experience

from memory.store import ExperienceStore


def fill_text(store: ExperienceStore, exps: list) -> None:
    import numpy as np

    base = np.asarray(store._text_vectors([e.situation for e in exps[:500]]))
    rng = np.random.default_rng(0)
    for i in range(0, len(exps), 1000):
        chunk = exps[i : i + 1000]
        vecs = base[np.arange(i, i + len(chunk)) % len(base)]
        vecs = vecs + rng.normal(0, 0.02, vecs.shape)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store._col.upsert(
            ids=[e.id for e in chunk],
            embeddings=vecs.astype(np.float32),
            documents=[e.situation for e in chunk],
            metadatas=[store._metadata(e) for e in chunk],
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--probes", type=int, default=50)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="memory-bench-"))
    rng = random.Random(0)
    pool = [experience(KINDS[i % 4], i, rng) for i in range(args.n + 2 * args.probes)]
    for emb in ("text", "features"):
        path = root / emb
        shutil.rmtree(path, ignore_errors=True)
        store = ExperienceStore(path, embedding=emb)
        t0 = time.perf_counter()
        if emb == "text":
            fill_text(store, pool[: args.n])
        else:
            for i in range(0, args.n, 500):
                store.add_many(pool[i : min(i + 500, args.n)])
        fill = time.perf_counter() - t0
        store.search(pool[0], k=5)  # warm
        writes, reads = [], []
        for j in range(args.probes):
            exp = pool[args.n + j]
            t = time.perf_counter()
            store.add(exp)
            writes.append((time.perf_counter() - t) * 1e3)
            q = pool[args.n + args.probes + j]
            t = time.perf_counter()
            hits = store.search(q, k=5)
            reads.append((time.perf_counter() - t) * 1e3)
            assert len(hits) == 5

        def fmt(xs: list[float]) -> str:
            p95 = statistics.quantiles(xs, n=20)[-1]
            return f"mean {statistics.fmean(xs):6.1f} ms, p95 {p95:6.1f} ms"

        print(
            f"{emb:8s} n={store.count():6d}  write one: {fmt(writes)}  "
            f"top-5 search: {fmt(reads)}  (fill {fill:.0f} s)",
            flush=True,
        )
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
