"""Measured model profiles and the service-time model built on them.

All figures come from `edgeagents/data/h200-*.json`, measured on one NVIDIA H200 (see
`edgeagents/data/PROVENANCE.md`). Other GPU types are derived by datasheet ratios:

- compute-bound phases (prefill, vision and audio encoders, UNet steps, VAE) scale by
  `H200 bf16 TFLOP/s / GPU bf16 TFLOP/s`;
- decode in the `optimized` regime (CUDA graphs, vLLM-class) scales by
  `H200 memory bandwidth / GPU memory bandwidth`;
- decode in the `hf-eager` regime is launch-bound on the H200 (about 60 ms a step whatever the
  batch); on another GPU it is the larger of that and the scaled optimized step.

Every prompt is served as: a *setup* that stalls its replica (prefill, encoders, VAE), then
*iterations* shared with the running batch (decode tokens, denoising steps), each taking
`iter_s(batch)`. That is iteration-level batching in analytic form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeAlias

import numpy as np

from edgeagents.core.state import EngineRegime, GpuType, ModelSpec

ArrayOrFloat: TypeAlias = float | np.ndarray

H200 = GpuType(name="H200", memory_gb=141.0, bf16_tflops=989.0, memory_bandwidth_gbps=4800.0)

BUILTIN_GPU_TYPES: dict[str, GpuType] = {
    g.name: g
    for g in (
        H200,
        # Datasheet figures: dense bf16 tensor TFLOP/s (no sparsity), memory bandwidth GB/s.
        GpuType(name="A100-80GB", memory_gb=80.0, bf16_tflops=312.0, memory_bandwidth_gbps=2039.0),
        GpuType(name="L40S", memory_gb=48.0, bf16_tflops=362.0, memory_bandwidth_gbps=864.0),
        GpuType(name="RTX-4090", memory_gb=24.0, bf16_tflops=165.0, memory_bandwidth_gbps=1008.0),
        GpuType(name="A10", memory_gb=24.0, bf16_tflops=125.0, memory_bandwidth_gbps=600.0),
        GpuType(name="L4", memory_gb=24.0, bf16_tflops=121.0, memory_bandwidth_gbps=300.0),
    )
}
"""GPU types known without a scenario declaring them."""

VLM_TOKENS_PER_IMAGE = 576
"""CLIP ViT-L/14 at 336 px yields 24 x 24 patch tokens per image (from the profile file)."""

WHISPER_WINDOW_S = 30.0
WHISPER_DECODER_WEIGHT_SHARE = 0.58
"""Share of Whisper-large-v3's weights in its decoder (907M of 1.55B parameters); what an
optimized decode step reads."""

SD_BASE_RESOLUTION_PX = 512


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("edgeagents.data").joinpath(name).read_text()
    return json.loads(text)


@cache
def eager_profiles() -> dict[str, Any]:
    """The HF-eager profile of every measured architecture (H200, bf16), with the long-prompt
    prefill points of `h200-prefill-long.json` added where the shipped file has none."""
    models = json.loads(json.dumps(_load("h200-hf-eager.json")["models"]))
    for name, extra in _load("h200-prefill-long.json")["models"].items():
        rows = models[name]["prefill"]
        have = {(r["batch"], r["input_tokens"]) for r in rows}
        rows += [r for r in extra["prefill"] if (r["batch"], r["input_tokens"]) not in have]
    return models


def cudagraph_profiles() -> dict[str, Any]:
    """Decode steps replayed as CUDA graphs (the optimized-engine regime), H200."""
    return _load("h200-decode-cudagraph.json")["models"]


_MEASURED: dict[str, dict[str, Any]] = {}
"""Profiles added at run time (`register_profiles`): measured on the user's own hardware."""

_REQUIRED: dict[str, dict[str, tuple[str, ...]]] = {
    "llm": {"prefill": ("batch", "input_tokens", "median_s"), "decode_step": ("batch", "median_s")},
    "vlm": {"prefill": ("batch", "input_tokens", "median_s"), "decode_step": ("batch", "median_s")},
    "text-to-image": {
        "text_encode": ("median_s",),
        "vae_decode": ("images", "median_s"),
        "unet_step": ("batch", "median_s"),
    },
    "speech-to-text": {"encode": ("batch", "median_s"), "decode_step": ("batch", "median_s")},
}


def known_profiles() -> list[str]:
    """Names of the built-in profiles and of those registered in this process."""
    return sorted([k for k in eager_profiles() if k != "host-to-device-copy"] + list(_MEASURED))


def profile(name: str) -> dict[str, Any]:
    """The figures of one profile, built in or registered."""
    built_in = eager_profiles()
    if name in built_in:
        return built_in[name]
    try:
        return _MEASURED[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r} (known: {', '.join(known_profiles())})") from None


def check_profile(kind: str, data: dict[str, Any]) -> None:
    """Raise ValueError naming what a profile lacks to serve a model of `kind`."""
    if not isinstance(data.get("weights_bytes"), int | float) or data["weights_bytes"] < 0:
        raise ValueError("weights_bytes: a non-negative number is required")
    for table, keys in _REQUIRED[kind].items():
        rows = data.get(table)
        if not isinstance(rows, list) or not rows:
            raise ValueError(f"{table}: a {kind} profile needs at least one row")
        positive = table in ("decode_step", "unet_step")  # the batch advances at 1 / step
        for j, row in enumerate(rows):
            for k in keys:
                v = row.get(k) if isinstance(row, dict) else None
                if not isinstance(v, int | float) or not v >= 0:
                    raise ValueError(f"{table}[{j}].{k}: a non-negative number is required")
                if positive and k == "median_s" and v <= 0:
                    raise ValueError(f"{table}[{j}].median_s: a step takes a positive time")
    if kind in ("llm", "vlm") and not any(r["batch"] == 1 for r in data["prefill"]):
        raise ValueError("prefill: a row with batch 1 is required")
    if kind == "text-to-image" and not any(r["images"] == 1 for r in data["vae_decode"]):
        raise ValueError("vae_decode: a row with images 1 is required")


def register_profiles(profiles: dict[str, dict[str, Any]]) -> None:
    """Add measured profiles (the shape of a model in `h200-hf-eager.json`) under new names.

    Registering a name again is allowed only with the same figures (a scenario file loaded
    twice); a built-in name, or a name already holding other figures, raises ValueError.
    """
    for name, data in profiles.items():
        if name in eager_profiles():
            raise ValueError(f"profile {name!r} is built in; give a measured profile a new name")
        have = _MEASURED.get(name)
        copy = json.loads(json.dumps(data))
        if have is not None and have != copy:
            raise ValueError(
                f"profile {name!r} is already registered with other figures; give each "
                "calibration its own name (serving.calibration adds a digest)"
            )
        _MEASURED[name] = copy


@cache
def optimized_bandwidth_tbps() -> float:
    """Median effective TB/s of the CUDA-graph decode steps: what an optimized engine reaches."""
    rates = [
        row["effective_TBps"]
        for model in cudagraph_profiles().values()
        for row in model["decode_step"]
    ]
    return float(np.median(rates))


def _interp(x: ArrayOrFloat, xs: list[float], ys: list[float]) -> ArrayOrFloat:
    """Piecewise-linear through the measured points, linear extrapolation past the last two."""
    xa = np.asarray(x, dtype=np.float64)
    out = np.interp(xa, xs, ys)
    if len(xs) > 1:
        slope = max((ys[-1] - ys[-2]) / (xs[-1] - xs[-2]), 0.0)
        out = np.where(xa > xs[-1], ys[-1] + slope * (xa - xs[-1]), out)
    return float(out) if out.ndim == 0 else out


def setup_h200_s(
    model: ModelSpec,
    input_tokens: ArrayOrFloat,
    images: ArrayOrFloat = 0,
    audio_s: ArrayOrFloat = 0.0,
    resolution_px: ArrayOrFloat = 0,
) -> ArrayOrFloat:
    """One-off phases of a prompt on a whole H200; every GPU type scales it by compute ratio."""
    kind = model.kind
    main = profile(model.profile)
    if kind in ("llm", "vlm"):
        xs, ys = _rows(main["prefill"], "input_tokens", batch=1)
        t = _interp(np.add(input_tokens, np.multiply(VLM_TOKENS_PER_IMAGE, images)), xs, ys)
        if kind == "vlm" and model.encoder_profile:
            exs, eys = _rows(profile(model.encoder_profile)["encode"], "batch")
            t = t + np.where(np.asarray(images) > 0, _interp(np.maximum(images, 1), exs, eys), 0.0)
        return t
    if kind == "text-to-image":
        sd = main
        area = (np.maximum(resolution_px, 1) / SD_BASE_RESOLUTION_PX) ** 2
        text = sd["text_encode"][0]["median_s"]
        vae = next(r["median_s"] for r in sd["vae_decode"] if r["images"] == 1)
        return text + vae * area
    windows = np.maximum(1, np.ceil(np.divide(audio_s, WHISPER_WINDOW_S)))
    exs, eys = _rows(main["encode"], "batch")
    return _interp(1.0, exs, eys) * windows


def iterations(
    model: ModelSpec,
    output_tokens: ArrayOrFloat,
    steps: ArrayOrFloat = 0,
    resolution_px: ArrayOrFloat = 0,
) -> ArrayOrFloat:
    """Units of batched work: decode tokens, or denoising steps scaled by image area."""
    if model.kind == "text-to-image":
        area = (np.maximum(resolution_px, 1) / SD_BASE_RESOLUTION_PX) ** 2
        return np.maximum(1, steps) * area
    return np.maximum(1, output_tokens) * 1.0


def _rows(rows: list[dict[str, Any]], key: str, **where: int) -> tuple[list[float], list[float]]:
    pts = sorted(
        (r[key], r["median_s"]) for r in rows if all(r.get(k) == v for k, v in where.items())
    )
    return [float(p[0]) for p in pts], [float(p[1]) for p in pts]


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """Service-time functions of one model on one GPU type in one engine regime.

    Built once per (model, GPU type, regime) and queried in the simulator's hot loop.
    """

    model: ModelSpec
    gpu: GpuType
    regime: EngineRegime
    compute_ratio: float
    bandwidth_ratio: float
    _iter_table: tuple[float, ...]

    def setup_s(
        self,
        input_tokens: ArrayOrFloat,
        images: ArrayOrFloat = 0,
        audio_s: ArrayOrFloat = 0.0,
        resolution_px: ArrayOrFloat = 0,
    ) -> ArrayOrFloat:
        """Seconds the prompt's one-off phases stall the replica (prefill, encoders, VAE).

        Accepts scalars or numpy arrays (one value per prompt)."""
        return setup_h200_s(self.model, input_tokens, images, audio_s, resolution_px) * (
            self.compute_ratio
        )

    def iterations(
        self, output_tokens: ArrayOrFloat, steps: ArrayOrFloat = 0, resolution_px: ArrayOrFloat = 0
    ) -> ArrayOrFloat:
        """Units of batched work: decode tokens, or denoising steps scaled by image area."""
        return iterations(self.model, output_tokens, steps, resolution_px)

    def iter_s(self, batch: int) -> float:
        """Seconds of one iteration with `batch` prompts in the running batch."""
        table = self._iter_table
        if batch <= 0:
            return table[0]
        if batch < len(table):
            return table[batch]
        return self._iter_uncached(batch)

    def _iter_uncached(self, batch: int) -> float:
        kind = self.model.kind
        if kind == "text-to-image":
            xs, ys = _rows(profile(self.model.profile)["unet_step"], "batch")
            # Classifier-free guidance doubles the UNet batch: one image = batch 2.
            return _interp(2.0 * batch, xs, ys) * self.compute_ratio
        return self._decode_s(batch)

    def _decode_s(self, batch: int) -> float:
        eager_rows = profile(self.model.profile)["decode_step"]
        ctx = self.model.typical_context_tokens
        optimized = self._optimized_decode_h200(batch, ctx) * self.bandwidth_ratio
        if self.regime == "optimized":
            return optimized
        xs, ys = _rows(eager_rows, "batch")
        return max(_interp(float(batch), xs, ys), optimized)

    def _optimized_decode_h200(self, batch: int, ctx: int) -> float:
        graphs = cudagraph_profiles().get(self.model.profile)
        if graphs is None:
            weights = profile(self.model.profile)["weights_bytes"]
            if self.model.kind == "speech-to-text":
                weights *= WHISPER_DECODER_WEIGHT_SHARE
            return weights / (optimized_bandwidth_tbps() * 1e12)
        rows = graphs["decode_step"]
        contexts = sorted({r["context_tokens"] for r in rows})
        by_ctx = [_interp(float(batch), *_rows(rows, "batch", context_tokens=c)) for c in contexts]
        return _interp(float(ctx), [float(c) for c in contexts], by_ctx)

    def standalone_s(
        self,
        input_tokens: int,
        output_tokens: int,
        images: int = 0,
        audio_s: float = 0.0,
        resolution_px: int = 0,
        steps: int = 0,
    ) -> float:
        """Warm replica, empty batch, full GPU: the prompt's own service time."""
        return self.setup_s(input_tokens, images, audio_s, resolution_px) + self.iterations(
            output_tokens, steps, resolution_px
        ) * self.iter_s(1)


@cache
def service_model(model: ModelSpec, gpu: GpuType, regime: EngineRegime) -> ServiceModel:
    """The service model of `model` on `gpu`, cached (models and GPU types are frozen)."""
    compute_ratio = H200.bf16_tflops / gpu.bf16_tflops
    bandwidth_ratio = H200.memory_bandwidth_gbps / gpu.memory_bandwidth_gbps
    proto = ServiceModel(model, gpu, regime, compute_ratio, bandwidth_ratio, ())
    table = tuple(proto._iter_uncached(max(b, 1)) for b in range(0, 257))
    return ServiceModel(model, gpu, regime, compute_ratio, bandwidth_ratio, table)


def load_s(model: ModelSpec, load_gbps: float) -> float:
    """Cold start: process start-up, then weights from local disk onto the GPU."""
    return model.init_s + model.weights_gb / load_gbps
