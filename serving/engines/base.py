"""What every engine shares: the `Engine` protocol, `EngineError`, the WAV decoding the gateway
uses too, and the helpers of the synthetic-weights models. No torch import at module level."""

from __future__ import annotations

import io
import os
import wave
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from serving.config import ModelServerConfig

SAMPLE_RATE_HZ = 16_000
MAX_AUDIO_S = 600.0
"""Longest audio `decode_wav` takes: the declared rate sets the resampled size, so a short file
claiming 1 Hz would otherwise ask for gigabytes at 16 kHz."""
SYN_VOCAB = 256
"""Vocabulary of the synthetic models: byte-level ids (`synthetic_ids`)."""


class EngineError(ValueError):
    """A request an engine cannot run (bad input); the gateway answers 400 with the message."""


class Engine(Protocol):
    """What a model server needs from a backend."""

    backend: str
    synthetic_weights: bool
    weights: str

    def load(self) -> None:
        """Build or read the model; the server measures how long this takes."""
        ...

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run requests together; one result dict (or one raised error) for the batch."""
        ...

    def memory_bytes(self) -> int:
        """Bytes of the model's parameters and buffers."""
        ...


def offline() -> None:
    """Forbid hub downloads in this process (real weights come from local paths only)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def torch_bytes(*modules: Any) -> int:
    total = 0
    for m in modules:
        if m is None:
            continue
        for t in list(m.parameters()) + list(m.buffers()):
            total += t.numel() * t.element_size()
    return total


def device_dtype(config: ModelServerConfig) -> tuple[str, Any]:
    """Where real weights go: the replica's GPU share in half precision, else CPU in fp32."""
    import torch

    if config.num_gpus > 0 and torch.cuda.is_available():
        return "cuda", torch.float16
    return "cpu", torch.float32


def synthetic_ids(text: str, max_len: int = 64) -> list[int]:
    """Byte-level token ids for a synthetic model (no tokenizer files exist for it)."""
    body = [3 + b % (SYN_VOCAB - 3) for b in text.encode("utf-8")][: max_len - 2]
    return [1, *body, 2]


def synthetic_text(ids: list[int]) -> str:
    """Render a synthetic model's token ids; the text is noise, labelled as such upstream."""
    return " ".join(f"t{i}" for i in ids)


def decode_wav(data: bytes) -> np.ndarray:
    """A WAV file (PCM 8/16/32-bit, any rate, any channels) as float32 mono at 16 kHz."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise EngineError(f"audio is not a PCM WAV file: {e}") from e
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None or rate <= 0:
        raise EngineError(f"unsupported WAV: {width * 8}-bit at {rate} Hz")
    frames = frames[: len(frames) - len(frames) % (width * channels)]  # a cut-off last frame
    x = np.frombuffer(frames, dtype=dtype).astype(np.float32)
    if width == 1:
        x = (x - 128.0) / 128.0
    else:
        x /= float(np.iinfo(dtype).max)
    x = x.reshape(-1, channels).mean(axis=1)
    if x.size == 0:
        raise EngineError("audio holds no samples")
    if x.size / rate > MAX_AUDIO_S:
        raise EngineError(f"audio of {x.size / rate:.0f} s at {rate} Hz is over {MAX_AUDIO_S:g} s")
    if rate != SAMPLE_RATE_HZ:
        n = max(1, round(x.size * SAMPLE_RATE_HZ / rate))
        x = np.interp(np.linspace(0, x.size - 1, n), np.arange(x.size), x).astype(np.float32)
    return x
