"""Calibration: profiles of the model servers as they really run here, in the simulator's form.

The simulator's built-in profiles describe the catalogue's models on an H200. The servers of a
Ray Serve city may run other weights on other hardware (on a CPU machine: SmolLM2 and tiny
synthetic models), so before comparing the two, `calibrate` times each server on a few request
sizes, one request at a time, and `fit_profile` turns those points into a profile of the shape
of `edgeagents/data/h200-hf-eager.json` (prefill by input tokens, a decode step, UNet steps,
an audio window). `calibrated_scenario` then builds the scenario whose sites hold one
`measured-host` GPU per model (a GPU type with the H200's datasheet figures, so the measured
profiles apply unscaled) and whose models point at those profiles. Any user does the same on
their own hardware: a simulator is only as good as the profiles it is given.

Every server takes a batch from its queue when idle, runs it to completion and answers all of
it at the end: the calibrated models use the simulator's `static` batching. The batch dimension
is not probed: every decode or denoising step is assumed to cost `batch` times a step at batch
1. llama.cpp and the VLM engine run a batch's requests one after another, so there it is exact;
for the batched Whisper and Stable Diffusion engines on CPU it is an approximation (a CPU is
compute-bound at these sizes).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.profiles import H200, SD_BASE_RESOLUTION_PX, VLM_TOKENS_PER_IMAGE
from edgeagents.core.scenario import Scenario
from serving.loadgen import (
    AUDIO_S,
    BYTES_PER_WORD,
    IMAGE_PX,
    MAX_INPUT_WORDS,
    MAX_OUTPUT_TOKENS,
    TRANSCRIBE_TOKENS,
    SentPrompt,
    png,
    send,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import httpx

HOST_GPU = "measured-host"
"""GPU type of the calibrated scenario: the H200's datasheet figures, so ratios are 1."""


def probe_sizes(kind: str, planned: Sequence[SentPrompt]) -> list[dict[str, Any]]:
    """Request sizes to time a server on: for text and VLM models the 10th and 90th
    percentile of the input words the run will send, each with 1 and the most output tokens;
    1 and 4 denoising steps; the shortest and longest audio (defaults where none is planned)."""
    if kind in ("llm", "vlm"):
        ins = [p.input_tokens for p in planned] or [1, MAX_INPUT_WORDS]
        outs = [p.output_tokens for p in planned] or [MAX_OUTPUT_TOKENS]
        sizes = sorted({int(np.percentile(ins, 10)), int(np.percentile(ins, 90))})
        return [
            {"input_tokens": i, "output_tokens": o, "images": int(kind == "vlm")}
            for i in sizes
            for o in sorted({1, max(outs)})
        ]
    if kind == "text-to-image":
        return [{"input_tokens": 8, "resolution_px": IMAGE_PX, "steps": s} for s in (1, 4)]
    audio = [p.audio_s for p in planned] or list(AUDIO_S)
    return [
        {"audio_s": a, "output_tokens": TRANSCRIBE_TOKENS} for a in sorted({min(audio), max(audio)})
    ]


def cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of the host's CPUs from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def busy_cores(since: tuple[float, float] | None) -> float | None:
    """Mean busy cores of the host (every process, ours and others') since `since`."""
    now = cpu_times()
    if since is None or now is None or now[1] <= since[1]:
        return None
    return (now[0] - since[0]) / (now[1] - since[1]) * (os.cpu_count() or 1)


def wait_quiet(max_wait_s: float, *, below_cores: float = 0.5) -> float | None:
    """Wait (at most `max_wait_s`) until the host's busy cores over half a second fall below
    `below_cores`: Ray and the servers settle after start-up, and on a shared machine other
    work comes and goes. Returns the last figure (None where /proc/stat is missing)."""
    deadline = time.perf_counter() + max_wait_s
    busy = None
    while True:
        t = cpu_times()
        time.sleep(0.5)
        busy = busy_cores(t)
        if busy is None or busy < below_cores or time.perf_counter() >= deadline:
            return busy


class ModelCalibration(BaseModel):
    """The fitted profile of one model's server and what it was fitted from."""

    model_config = ConfigDict(extra="forbid")

    model: str
    source: str = Field(
        description="probes (timed at start), run (the run's own served requests) or none."
    )
    points: list[dict[str, float]] = Field(
        description="Each timed batch: requests, summed sizes, the server's inference seconds."
    )
    profile_name: str
    profile: dict[str, Any]
    overhead_s: float = Field(
        description="Median client latency beyond the server's queue and inference time of "
        "the timed requests (HTTP client, Serve proxy, gateway, handle call)."
    )


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelCalibration]
    wall_s: float = Field(description="Wall seconds the timing took.")
    host_busy_cores: float | None = Field(
        default=None,
        description="Mean busy cores of the host while timing (every process: one server at a "
        "time is ours, the rest is Ray, the gateway and whatever else runs there).",
    )


def calibrate(
    client: httpx.Client,
    scenario: Scenario,
    models: Sequence[str],
    planned: Sequence[SentPrompt] = (),
    *,
    repeats: int = 3,
    quiet_wait_s: float = 30.0,
    on_line: Callable[[str], None] | None = None,
) -> Calibration:
    """Time the servers of `models` through the gateway (`client`'s base URL), one request at
    a time and without a cell (no emulated network), at `probe_sizes` of the prompts
    `planned` for each model, after one warm-up request each; fit their profiles. First wait
    up to `quiet_wait_s` for the host to be nearly idle (`wait_quiet`)."""
    t0 = time.perf_counter()
    quiet = wait_quiet(quiet_wait_s)
    if on_line is not None and quiet is not None:
        on_line(f"host busy {quiet:.1f} cores before timing the servers")
    cpu0 = cpu_times()
    out: dict[str, ModelCalibration] = {}
    seeds = iter(range(1_000_000, 2_000_000))
    for model in models:
        kind = scenario.model(model).kind
        sizes = probe_sizes(kind, [p for p in planned if p.model == model])

        def probe(size: dict[str, Any], model: str = model, kind: str = kind) -> SentPrompt:
            return SentPrompt(model, kind, None, 0.0, text_seed=next(seeds), **size)

        send(client, probe(sizes[-1]))  # warm-up: first-call costs
        points = [send(client, probe(size)) for _ in range(repeats) for size in sizes]
        served = [p for p in points if p.served]
        out[model] = fit_model(model, kind, served, source="probes")
        if on_line is not None:
            c = out[model]
            on_line(
                f"calibrated {model}: {len(served)} requests, overhead {c.overhead_s * 1e3:.0f} ms"
            )
    return Calibration(
        models=out, wall_s=time.perf_counter() - t0, host_busy_cores=busy_cores(cpu0)
    )


def fit_model(
    model: str, kind: str, served: Sequence[SentPrompt], *, source: str
) -> ModelCalibration:
    """A `ModelCalibration` from served requests: their sizes, the server's inference seconds
    of the batch each ran in, and their overhead. `probes` ran one at a time; otherwise the
    requests of one batch are found by their shared site, inference seconds and batch size."""
    batches: dict[tuple[Any, ...], list[SentPrompt]] = {}
    for k, p in enumerate(served):
        if p.infer_s is not None and p.batch:
            key = (k,) if source == "probes" else (p.site, p.infer_s, p.batch)
            batches.setdefault(key, []).append(p)
    points = [_point(ps) for ps in batches.values() if source == "probes" or len(ps) == ps[0].batch]
    fit = points
    if source == "probes":  # the median time of each size: one slow repeat does not count
        by_size: dict[tuple[float, ...], list[dict[str, float]]] = {}
        for pt in points:
            by_size.setdefault(tuple(v for k, v in pt.items() if k != "infer_s"), []).append(pt)
        fit = [{**g[0], "infer_s": float(np.median([pt["infer_s"] for pt in g]))}
               for g in by_size.values()]  # fmt: skip
    profile = fit_profile(kind, fit)
    overheads = [p.overhead_s for p in served if p.overhead_s is not None]
    return ModelCalibration(
        model=model,
        source=source if points else "none",
        points=points,
        profile_name=profile_name(model, profile),
        profile=profile,
        overhead_s=max(0.0, float(np.median(overheads))) if overheads else 0.0,
    )


def _point(batch: list[SentPrompt]) -> dict[str, float]:
    """One batch: its request count, summed sizes, largest input and inference seconds."""
    out = [max(1, p.output_tokens if p.completion_tokens is None else p.completion_tokens)
           for p in batch]  # fmt: skip
    return {
        "requests": float(len(batch)),
        "input_tokens": float(sum(p.input_tokens for p in batch)),
        "max_input_tokens": float(max(p.input_tokens for p in batch)),
        "output_tokens": float(sum(out)),
        "steps": float(sum(p.steps for p in batch)),
        "infer_s": float(batch[0].infer_s or 0.0),
    }


def _lstsq(columns: list[str], points: Sequence[dict[str, float]]) -> list[float]:
    """Non-negative least squares over a few columns: the best fit among the column subsets
    whose ordinary least-squares coefficients are all non-negative (exact for so few)."""
    x = np.array([[p[c] for c in columns] for p in points])
    t = np.array([p["infer_s"] for p in points])
    best, best_err = [0.0] * len(columns), float(np.sum(t**2))
    for mask in itertools.product((False, True), repeat=len(columns)):
        cols = [j for j, on in enumerate(mask) if on]
        if not cols:
            continue
        coef = np.linalg.lstsq(x[:, cols], t, rcond=None)[0]
        if np.any(coef < 0):
            continue
        err = float(np.sum((x[:, cols] @ coef - t) ** 2))
        if err < best_err - 1e-15:
            best = [0.0] * len(columns)
            for j, v in zip(cols, coef, strict=True):
                best[j] = float(v)
            best_err = err
    return best


MIN_STEP_S = 1e-5
"""Floor of a fitted step: the simulator advances a batch at 1 / step."""


def _linear_batch(step_s: float, **extra: Any) -> list[dict[str, Any]]:
    step_s = max(step_s, MIN_STEP_S)
    return [{"batch": b, **extra, "median_s": b * step_s} for b in (1, 8)]


def fit_profile(kind: str, points: Sequence[dict[str, float]]) -> dict[str, Any]:
    """A profile in the simulator's form from timed batches (see the module docstring): each
    batch's inference seconds as the sum of its requests' costs.

    llm and vlm: `prefill(input) = a + b x input` and a decode step per output token;
    text-to-image: a fixed cost and a cost per denoising step; speech-to-text: a cost per
    decoded token (the engine pads audio to one 30 s window, so its length does not matter).
    No points: a zero-cost placeholder."""
    if kind in ("llm", "vlm"):
        fixed = per_input = step = 0.0
        if points:
            fixed, per_input, step = _lstsq(["requests", "input_tokens", "output_tokens"], points)
        top = max([p["max_input_tokens"] for p in points] + [1.0])
        offset = VLM_TOKENS_PER_IMAGE if kind == "vlm" else 0
        prefill = [
            {"batch": 1, "input_tokens": int(x) + offset, "median_s": fixed + per_input * x}
            for x in (0, top)
        ]
        return {"weights_bytes": 0, "prefill": prefill,
                "decode_step": _linear_batch(step, context_tokens=0)}  # fmt: skip
    if kind == "text-to-image":
        fixed, step = _lstsq(["requests", "steps"], points) if points else (0.0, 0.0)
        area = (IMAGE_PX / SD_BASE_RESOLUTION_PX) ** 2
        return {
            "weights_bytes": 0,
            "resolution": IMAGE_PX,
            "text_encode": [{"batch": 2, "median_s": fixed}],
            "vae_decode": [{"images": 1, "median_s": 0.0}],
            "unet_step": [
                {"batch": 2 * b, "images": b, "median_s": b * max(step, MIN_STEP_S) / area}
                for b in (1, 4)
            ],
        }
    (per_token,) = _lstsq(["output_tokens"], points) if points else (0.0,)
    return {
        "weights_bytes": 0,
        "encode": [{"batch": 1, "median_s": 0.0}],
        "decode_step": _linear_batch(per_token),
    }


def profile_name(model: str, profile: dict[str, Any]) -> str:
    """A name unique to these figures: `<model>@measured-<digest>`."""
    digest = hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()[:10]
    return f"{model}@measured-{digest}"


def calibrated_scenario(
    scenario: Scenario,
    calibration: Calibration,
    *,
    placement: dict[str, list[str]],
    max_batch: int,
    max_queue_per_server: int,
) -> Scenario:
    """The scenario as the servers really run: measured profiles on `measured-host` GPUs (one
    per model at every site: a CPU server does not share a compute budget with the other
    servers of its site), static batching at the servers' batch limit, the gateway's
    back-pressure bound, `placement` to start with, loads that take no simulated time (a
    replay applies each load when the real server became ready) and no failure events."""
    data = scenario.model_dump(mode="json")
    n = len(scenario.models)
    cals = {
        m.name: calibration.models.get(m.name) or fit_model(m.name, m.kind, [], source="none")
        for m in scenario.models
    }
    data.update(
        name=f"{scenario.name}-calibrated",
        engine="hf-eager",
        gpu_types=[
            {
                "name": HOST_GPU,
                "memory_gb": 1.0,
                "bf16_tflops": H200.bf16_tflops,
                "memory_bandwidth_gbps": H200.memory_bandwidth_gbps,
            }
        ],
        profiles={c.profile_name: c.profile for c in cals.values()},
        placement=placement,
        events=[],
        payload={  # what the load generator's requests and answers weigh (serving/loadgen.py)
            **data["payload"],
            "bytes_per_token": BYTES_PER_WORD,
            "image_in_kb": len(png()) / 1e3,
            "audio_kb_per_s": 32.0,
        },
    )
    for site in data["sites"]:
        site.update(gpus=[{"type": HOST_GPU, "count": n}], load_gbps=1e6)
    for m in data["models"]:
        m.update(
            profile=cals[m["name"]].profile_name,
            encoder_profile=None,
            weights_gb=0.6,
            kv_bytes_per_token=0,
            activation_gb_per_item=0.0,
            workspace_gb=0.0,
            batching="static",
            max_batch=max_batch,
            init_s=0.0,
        )
    data["control"]["max_queue_per_replica"] = max(1, max_queue_per_server - max_batch)
    return Scenario.model_validate(data)
