"""The experience store: a Chroma `PersistentClient` collection with explicit embeddings.

Two embeddings, one collection each (chosen when the store is opened):

- `features` (default): the numeric state-feature vector, each entry through log1p (demand,
  queue and latency span orders of magnitude), Euclidean space. Every experience in one
  features collection must have the same vector length (one scenario's models and sites). It
  retrieves the right past situation by a wide margin and is about 10x faster than text
  (`bench/memory_bench.py`), so the agents use it. Searching it with words matches them in
  the situation text instead (`search`).
- `text`: the situation text through all-MiniLM-L6-v2 (`memory.embed`), cosine space.

Ranking (`search`): Chroma returns the nearest `max(4k, 20)` candidates; each gets

    score = similarity - OUTCOME_WEIGHT * spread * latency / max(latency over the candidates)

with similarity = 1 - cosine distance (text) or 1 / (1 + Euclidean distance) (features), both
in [0, 1], spread = max(similarity) - min(similarity) over the candidates (at least 0.01), and
OUTCOME_WEIGHT = 0.05 (an unknown latency counts as the slowest). The outcome term is scaled by
the spread because the two embeddings live on very different scales: MiniLM gives every
situation summary a cosine near 0.95 (the right situation wins by 0.01-0.03), the feature
distance separates situations by 0.5. So the outcome reorders near-ties only (among equally
similar situations the one that went better comes first), never a clearly more similar one.
The top k by score are returned.

chromadb and the embedding model are imported inside functions only.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from memory.errors import MemoryStoreError
from memory.experience import Experience

EmbeddingKind = Literal["text", "features"]
OUTCOME_WEIGHT = 0.05
SCHEMA = 1
DEFAULT_DIR = "~/.cache/edgeagents/memory"
ENV_DIR = "EDGEAGENTS_MEMORY_DIR"


def default_memory_dir() -> Path:
    """`$EDGEAGENTS_MEMORY_DIR`, else `~/.cache/edgeagents/memory`."""
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR).expanduser()


def _one_line(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def feature_embedding(features: list[float]) -> list[float]:
    """The vector stored for the `features` embedding: log1p of each (non-negative) entry."""
    return [math.log1p(max(0.0, float(x))) for x in features]


class ExperienceStore:
    """Persistent experiences on Chroma. Every failure to use it is a `MemoryStoreError`."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        embedding: EmbeddingKind = "features",
        collection: str = "experiences",
    ) -> None:
        if embedding not in ("text", "features"):
            raise MemoryStoreError(f"embedding {embedding!r}: expected 'text' or 'features'")
        self.path = Path(path).expanduser() if path is not None else default_memory_dir()
        self.embedding: EmbeddingKind = embedding
        self.collection_name = collection if embedding == "text" else f"{collection}-features"
        self._check_path()
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as e:
            raise MemoryStoreError(
                f"chromadb cannot be imported ({e}): pip install 'edgeagents[memory]'"
            ) from None
        try:
            self._client = chromadb.PersistentClient(
                path=str(self.path),
                settings=Settings(anonymized_telemetry=False, allow_reset=True),
            )
            self._col = self._open_collection()
        except MemoryStoreError:
            raise
        except Exception as e:
            raise MemoryStoreError(
                f"memory store {self.path}: corrupted or incompatible ({_one_line(e)})"
            ) from None
        self._ef: Any = None

    # ---- opening ----------------------------------------------------------------------------

    def _check_path(self) -> None:
        p = self.path
        if p.exists() and not p.is_dir():
            raise MemoryStoreError(f"memory store {p}: exists and is not a directory")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MemoryStoreError(f"memory store {p}: cannot create ({_one_line(e)})") from None
        if not os.access(p, os.W_OK | os.X_OK):
            raise MemoryStoreError(f"memory store {p}: directory is not writable")
        db = p / "chroma.sqlite3"
        if db.exists():
            with db.open("rb") as f:
                head = f.read(16)
            if head and head != b"SQLite format 3\x00":
                raise MemoryStoreError(f"memory store {p}: corrupted ({db.name} is not SQLite)")

    def _open_collection(self) -> Any:
        space = "cosine" if self.embedding == "text" else "l2"
        meta = {"edgeagents_embedding": self.embedding, "edgeagents_schema": SCHEMA}
        col = self._client.get_or_create_collection(
            self.collection_name,
            metadata=meta,
            configuration={"hnsw": {"space": space}},
            embedding_function=None,
        )
        got = col.metadata or {}
        if (
            got.get("edgeagents_embedding") != self.embedding
            or got.get("edgeagents_schema") != SCHEMA
        ):
            raise MemoryStoreError(
                f"memory store {self.path}: collection {self.collection_name!r} is not an "
                f"edgeagents {self.embedding} store of schema {SCHEMA} (metadata {got})"
            )
        return col

    # ---- embedding --------------------------------------------------------------------------

    def _text_vectors(self, texts: list[str]) -> list[Any]:
        if self._ef is None:
            from memory.embed import MiniLMEmbedding

            self._ef = MiniLMEmbedding()
        return self._ef(texts)

    def _vectors(self, exps: list[Experience]) -> list[Any]:
        if self.embedding == "text":
            return self._text_vectors([e.situation for e in exps])
        for e in exps:
            if not e.features:
                raise MemoryStoreError(f"experience {e.id}: no features for a features store")
        return [feature_embedding(e.features) for e in exps]

    def _query_vector(self, query: str | Experience | list[float]) -> Any:
        if isinstance(query, Experience):
            return self._vectors([query])[0]
        if isinstance(query, str):
            return self._text_vectors([query])[0]
        if self.embedding != "features":
            raise MemoryStoreError("a text store is searched by text or an Experience")
        return feature_embedding(list(query))

    # ---- writing ----------------------------------------------------------------------------

    @staticmethod
    def _metadata(e: Experience) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "scenario": e.scenario,
            "time_s": float(e.time_s),
            "epoch": int(e.epoch),
            "refused": int(e.refused),
            "kind": e.kind,
            "shift": e.shift,
            "experience": e.model_dump_json(),
        }
        if e.mean_latency_s is not None:
            meta["mean_latency_s"] = float(e.mean_latency_s)
        if e.jain is not None:
            meta["jain"] = float(e.jain)
        return meta

    def add(self, exp: Experience) -> None:
        """Store one experience (replaces one with the same id)."""
        self.add_many([exp])

    def add_many(self, exps: list[Experience]) -> None:
        """Store experiences in one batch (each replaces one with the same id)."""
        if not exps:
            return
        vectors = self._vectors(exps)
        try:
            self._col.upsert(
                ids=[e.id for e in exps],
                embeddings=vectors,
                documents=[e.situation for e in exps],
                metadatas=[self._metadata(e) for e in exps],
            )
        except Exception as e:
            raise MemoryStoreError(
                f"memory store {self.path}: write failed ({_one_line(e)})"
            ) from None

    # ---- reading ----------------------------------------------------------------------------

    def search(
        self,
        query: str | Experience | list[float],
        k: int = 5,
        where: dict[str, Any] | None = None,
    ) -> list[tuple[Experience, float]]:
        """The k best past experiences for a situation (text, an Experience, or a feature
        vector for a features store), best first, with their scores (see the module doc)."""
        if k < 1:
            raise MemoryStoreError(f"k={k}: expected at least 1")
        n = self.count()
        if n == 0:
            return []
        if isinstance(query, str) and self.embedding == "features":
            return self._match_words(query, k, where)
        vector = self._query_vector(query)
        try:
            res = self._col.query(
                query_embeddings=[vector],
                n_results=min(n, max(4 * k, 20)),
                where=where or None,
                include=["metadatas", "distances"],
            )
        except Exception as e:
            raise MemoryStoreError(
                f"memory store {self.path}: search failed ({_one_line(e)})"
            ) from None
        metas = (res.get("metadatas") or [[]])[0]
        dists = (res.get("distances") or [[]])[0]
        cands = []
        for meta, d in zip(metas, dists, strict=True):
            exp = Experience.model_validate_json(meta["experience"])
            if self.embedding == "text":
                sim = 1.0 - float(d)
            else:
                sim = 1.0 / (1.0 + math.sqrt(max(0.0, float(d))))
            cands.append((exp, sim))
        lats = [e.mean_latency_s for e, _ in cands if e.mean_latency_s is not None]
        worst = max(lats) if lats else 0.0
        sims = [sim for _, sim in cands]
        spread = max(max(sims) - min(sims), 0.01) if sims else 0.01
        scored = []
        for exp, sim in cands:
            if exp.mean_latency_s is None or worst <= 0:
                norm = 1.0 if exp.mean_latency_s is None and worst > 0 else 0.0
            else:
                norm = exp.mean_latency_s / worst
            scored.append((exp, sim - OUTCOME_WEIGHT * spread * norm))
        scored.sort(key=lambda t: -t[1])
        return scored[:k]

    def _match_words(
        self, text: str, k: int, where: dict[str, Any] | None
    ) -> list[tuple[Experience, float]]:
        """Words against a features store: experiences whose situation contains every word,
        best outcome first; the score is the share of words matched (1.0 here)."""
        words = [w for w in text.split() if w]
        if not words:
            raise MemoryStoreError("search text is empty")
        cond: dict[str, Any] = (
            {"$contains": words[0]}
            if len(words) == 1
            else {"$and": [{"$contains": w} for w in words]}
        )
        try:
            got = self._col.get(where=where or None, where_document=cond, include=["metadatas"])
        except Exception as e:
            raise MemoryStoreError(
                f"memory store {self.path}: search failed ({_one_line(e)})"
            ) from None
        exps = [Experience.model_validate_json(m["experience"]) for m in got["metadatas"] or []]
        exps.sort(key=lambda e: (e.mean_latency_s is None, e.mean_latency_s or 0.0, -e.time_s))
        return [(e, 1.0) for e in exps[:k]]

    def count(self) -> int:
        try:
            return int(self._col.count())
        except Exception:
            pass
        try:  # another process may have cleared (re-created) the collection
            self._col = self._open_collection()
            return int(self._col.count())
        except Exception as e:
            raise MemoryStoreError(f"memory store {self.path}: {_one_line(e)}") from None

    def all(self) -> list[Experience]:
        """Every stored experience, by time then id."""
        try:
            got = self._col.get(include=["metadatas"])
        except Exception as e:
            raise MemoryStoreError(f"memory store {self.path}: {_one_line(e)}") from None
        exps = [Experience.model_validate_json(m["experience"]) for m in got["metadatas"] or []]
        return sorted(exps, key=lambda e: (e.scenario, e.time_s, e.id))

    def stats(self) -> dict[str, Any]:
        """Count, scenarios, simulated time span, path, embedding, collection."""
        try:
            metas = self._col.get(include=["metadatas"])["metadatas"] or []
        except Exception as e:
            raise MemoryStoreError(f"memory store {self.path}: {_one_line(e)}") from None
        times = [float(m["time_s"]) for m in metas]
        return {
            "path": str(self.path),
            "collection": self.collection_name,
            "embedding": self.embedding,
            "count": len(metas),
            "scenarios": sorted({str(m["scenario"]) for m in metas}),
            "time_span_s": [min(times), max(times)] if times else None,
        }

    # ---- moving -----------------------------------------------------------------------------

    def export(self, path: str | Path) -> int:
        """Write every experience as JSON lines; returns how many."""
        path = Path(path)
        exps = self.all()
        tmp = path.with_name(path.name + ".tmp")
        try:
            with tmp.open("w") as f:
                for e in exps:
                    f.write(e.model_dump_json() + "\n")
            tmp.replace(path)
        except OSError as e:
            raise MemoryStoreError(f"export to {path}: {_one_line(e)}") from None
        return len(exps)

    def import_(self, path: str | Path, batch: int = 256) -> int:
        """Read JSON lines written by `export`; experiences with an id already stored are
        replaced, so importing twice changes nothing. Returns how many lines were read."""
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise MemoryStoreError(f"import from {path}: {_one_line(e)}") from None
        exps = []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                exps.append(Experience.model_validate(json.loads(line)))
            except Exception as e:
                raise MemoryStoreError(
                    f"import from {path}: line {i} is not an experience ({_one_line(e)})"
                ) from None
        for i in range(0, len(exps), batch):
            self.add_many(exps[i : i + batch])
        return len(exps)

    def clear(self) -> None:
        """Delete every experience of this store's collection."""
        try:
            self._client.delete_collection(self.collection_name)
            self._col = self._open_collection()
        except Exception as e:
            raise MemoryStoreError(
                f"memory store {self.path}: clear failed ({_one_line(e)})"
            ) from None
