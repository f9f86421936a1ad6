"""What kind of notice this is, read by the embedded sentence encoder.

A 135M chat model picks the kind of a notice no better than chance (it answers the label it
saw first or last); the encoder, comparing a notice with labelled examples, does far better.
The examples (`data/notice-kinds.jsonl`) were written for this and name no site of any
shipped scenario, so the benchmark set of notices stays held out. Embeddings are centred on
the examples' mean before comparing: what all notices share (services, sites, times) then
weighs less than the words that say what a notice asks.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, Field

from edgeagents.core.notice import IntentKind

KIND_EXAMPLES_FILE = Path(__file__).parents[1] / "data" / "notice-kinds.jsonl"


class KindReading(BaseModel):
    """The encoder's reading of one notice: the kind and its cosine score per kind."""

    kind: IntentKind
    scores: dict[str, float] = Field(description="Cosine to each kind's centroid.")
    wall_s: float = 0.0


def load_kind_examples(path: Path | None = None) -> list[tuple[str, IntentKind]]:
    """(text, kind) pairs (by default the shipped examples); ValueError naming the line if one
    is malformed."""
    path = path or KIND_EXAMPLES_FILE
    kinds = set(get_args(IntentKind))
    out: list[tuple[str, IntentKind]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, kind = str(row["text"]), row["kind"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path.name} line {n}: {e}") from None
        if kind not in kinds:
            raise ValueError(f"{path.name} line {n}: unknown kind {kind!r}")
        out.append((text, kind))
    return out


def _unit(x: Any) -> Any:
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


@lru_cache(maxsize=1)
def kind_centroids() -> tuple[Any, Any, tuple[IntentKind, ...]]:
    """(mean of the examples, one unit centroid per kind, the kinds in row order)."""
    import numpy as np

    from edgeagents.agents.encoder import encode

    examples = load_kind_examples()
    vecs = encode([t for t, _ in examples])
    mean = vecs.mean(axis=0)
    centred = _unit(vecs - mean)
    kinds = tuple(k for k in get_args(IntentKind))
    labels = np.array([k for _, k in examples])
    rows = [_unit(centred[labels == k].mean(axis=0)) for k in kinds]
    return mean, np.stack(rows), kinds


def read_kind(text: str) -> KindReading:
    """The kind whose examples a notice is nearest (EncoderError if the encoder is missing)."""
    from edgeagents.agents.encoder import encode

    t0 = time.perf_counter()
    mean, centroids, kinds = kind_centroids()
    scores = centroids @ _unit(encode([text])[0] - mean)
    best = int(scores.argmax())
    return KindReading(
        kind=kinds[best],
        scores={k: round(float(s), 4) for k, s in zip(kinds, scores, strict=True)},
        wall_s=time.perf_counter() - t0,
    )
