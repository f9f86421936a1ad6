"""Prompts of an episode: arrival processes (drawn, or replayed from a `trace`), sizes by model
kind, and cells (from `cells`, with user mobility).

A workload is drawn once per episode, before simulation, as columnar numpy arrays, so the
simulator can walk 10^4-10^6 prompts without building a pydantic object for each. Every random
draw comes from a generator derived from `seed` and the demand's model name, so adding a
demand to a scenario leaves the prompts of the others unchanged.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeagents.core.scenario import (
    ArrivalConfig,
    ModelDemand,
    PromptSizes,
    Scenario,
    ScenarioError,
    WorkloadConfig,
)
from edgeagents.core.state import ModelKind, Prompt
from edgeagents.core.text_shapes import TEXT_SHAPES
from edgeagents.sim.cells import CellSampler
from edgeagents.sim.trace import Trace, frozen_column, load_trace

__all__ = ["Workload", "generate_workload", "load_trace", "typical_prompt"]

_DEFAULT_TOKENS: dict[str, tuple[float, float]] = {
    "llm": (1000.0, 200.0),
    "vlm": (120.0, 120.0),
    "text-to-image": (40.0, 0.0),
}
_STT_TOKENS_PER_AUDIO_S = 3.0
_GOLDEN = 0.6180339887498949  # extra trace copies start this share of a period apart
_INT32_MAX = np.iinfo(np.int32).max

_COLUMNS: dict[str, type[np.generic]] = {
    "arrival_s": np.float64,
    "model": np.int16,
    "cell": np.int16,
    "input_tokens": np.int32,
    "output_tokens": np.int32,
    "images": np.int16,
    "audio_s": np.float32,
    "resolution_px": np.int32,
    "steps": np.int32,
}


@dataclass(frozen=True, slots=True, eq=False)
class Workload:
    """Columnar prompts of one episode, sorted by arrival time (numpy arrays, same length).

    Attributes:
        model_names: Index space of `model` (the scenario's model names, in order).
        cell_names: Index space of `cell` (the scenario's cell names, in order).
        arrival_s: float64 send times, ascending, in [0, duration).
        model: int16 index into `model_names`.
        cell: int16 index into `cell_names` (the user's cell at the time).
        input_tokens: int32 text tokens in (the prompt of a text-to-image request).
        output_tokens: int32 tokens to generate (0 for text-to-image).
        images: int16 images attached (VLM), else 0.
        audio_s: float32 seconds of audio (speech-to-text), else 0.
        resolution_px: int32 side of the generated image (text-to-image), else 0.
        steps: int32 denoising steps (text-to-image), else 0.
    """

    model_names: tuple[str, ...]
    cell_names: tuple[str, ...]
    arrival_s: np.ndarray
    model: np.ndarray
    cell: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    images: np.ndarray
    audio_s: np.ndarray
    resolution_px: np.ndarray
    steps: np.ndarray
    texts: tuple[str, ...] | None = None
    """The users' prompt texts, when a workload carries them (served, never shown to agents)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_names", tuple(self.model_names))
        object.__setattr__(self, "cell_names", tuple(self.cell_names))
        for name, dtype in _COLUMNS.items():
            object.__setattr__(self, name, frozen_column(getattr(self, name), dtype, name))
        lengths = {name: len(getattr(self, name)) for name in _COLUMNS}
        if self.texts is not None:
            lengths["texts"] = len(self.texts)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"workload columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.arrival_s)

    def prompt(self, i: int) -> Prompt:
        """Prompt `i` as the shared pydantic model (for agents and reports, not hot loops)."""
        return Prompt(
            id=i,
            model=self.model_names[self.model[i]],
            cell=self.cell_names[self.cell[i]],
            arrival_s=float(self.arrival_s[i]),
            input_tokens=int(self.input_tokens[i]),
            output_tokens=int(self.output_tokens[i]),
            images=int(self.images[i]),
            audio_s=float(self.audio_s[i]),
            resolution_px=int(self.resolution_px[i]),
            steps=int(self.steps[i]),
            text=None if self.texts is None else self.texts[i],
        )

    def with_copies_first(self, rows: np.ndarray) -> Workload:
        """This workload after copies of prompts `rows`, all sent at time 0 (a backlog the
        what-if twin starts with; the copies carry no text)."""
        columns = {
            name: np.concatenate([getattr(self, name)[rows], getattr(self, name)])
            for name in _COLUMNS
        }
        columns["arrival_s"][: len(rows)] = 0.0
        return Workload(self.model_names, self.cell_names, **columns)

    def counts_by_model(self) -> dict[str, int]:
        """Prompts per model name, zero for models without demand."""
        counts = np.bincount(self.model, minlength=len(self.model_names))
        return {name: int(c) for name, c in zip(self.model_names, counts, strict=False)}


def generate_workload(
    scenario: Scenario,
    *,
    duration_s: float | None = None,
    seed: int = 0,
    trace_path: str | Path | None = None,
) -> Workload:
    """Draw the prompts of one episode.

    Args:
        scenario: The city and its `workload` configuration.
        duration_s: Episode length; None takes `scenario.duration_s`.
        seed: Root of all randomness; the same seed gives identical arrays.
        trace_path: Replaces the `trace` of every demand for an `llm` model (CLI `--trace`).

    Returns:
        All prompts with arrival in [0, duration_s), sorted by arrival (stable).

    Raises:
        ScenarioError: A bad duration, or a trace that cannot be read.
    """
    duration = scenario.duration_s if duration_s is None else float(duration_s)
    if not math.isfinite(duration) or duration < 0:
        raise ScenarioError(f"duration_s: must be a finite number >= 0, got {duration_s}")
    wl = scenario.workload
    cells = CellSampler(scenario, duration, _rng(seed, "mobility"))
    traces: dict[str | Path, Trace] = {}
    parts: list[dict[str, np.ndarray]] = []
    seen: dict[str, int] = {}
    for demand in wl.demands:
        rng = _rng(seed, "demand", demand.model, seen.get(demand.model, 0))
        seen[demand.model] = seen.get(demand.model, 0) + 1
        kind = scenario.model(demand.model).kind
        source = trace_path if trace_path is not None and kind == "llm" else demand.trace
        rate, peak = _multiplier(demand.model, wl, duration)
        if source is None:
            t = _arrivals(rng, demand.arrivals, duration, rate, peak)
            cols = _sizes(rng, kind, demand.sizes, len(t))
        else:
            if source not in traces:
                traces[source] = load_trace(source)
            trace = traces[source]
            t, rows = _replay(rng, trace, demand, duration, rate, peak)
            cols = _sizes(rng, kind, demand.sizes, len(t))
            if kind != "speech-to-text":
                cols["input_tokens"] = trace.input_tokens[rows]
            if kind in ("llm", "vlm"):
                cols["output_tokens"] = trace.output_tokens[rows]
        cell, keep = cells.assign(rng, demand.model, t)
        model = np.full(len(t), scenario.model_names.index(demand.model))
        cols |= {"arrival_s": t, "cell": cell, "model": model}
        parts.append({k: np.asarray(v)[keep].astype(_COLUMNS[k]) for k, v in cols.items()})
    merged = {k: np.concatenate([p[k] for p in parts]) for k in _COLUMNS}
    order = np.argsort(merged["arrival_s"], kind="stable")
    return Workload(
        model_names=tuple(scenario.model_names),
        cell_names=tuple(c.name for c in scenario.cells),
        **{k: v[order] for k, v in merged.items()},
    )


def _rng(seed: int, *tags: str | int) -> np.random.Generator:
    """A generator keyed by names, independent of how many other streams exist."""
    key = tuple(t if isinstance(t, int) else zlib.crc32(t.encode()) for t in tags)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


Multiplier = Callable[[np.ndarray], np.ndarray]


def _multiplier(model: str, wl: WorkloadConfig, T: float) -> tuple[Multiplier, float]:
    """The rate multiplier (diurnal swing times step shifts in force) and its bound on [0, T)."""
    steps = [(s.at_s, s.factor) for s in wl.shifts if s.cell is None and s.model in (None, model)]
    amp, period = (wl.diurnal.amplitude, wl.diurnal.period_s) if wl.diurnal else (0.0, 1.0)

    def multiplier(t: np.ndarray, swing: float = amp) -> np.ndarray:
        m = 1.0 + swing * np.sin(2 * np.pi * t / period)
        for at, factor in steps:
            m = np.where(t >= at, m * factor, m)
        return m

    corners = np.array([0.0, *(at for at, _ in steps if at < T)])
    return multiplier, float(multiplier(corners, 0.0).max()) * (1.0 + amp)


def _arrivals(
    rng: np.random.Generator, cfg: ArrivalConfig, T: float, rate: Multiplier, peak: float
) -> np.ndarray:
    """Poisson or MMPP arrivals at `peak` times the rate, thinned to the time-varying rate."""
    if T <= 0 or cfg.rate_per_s <= 0 or peak <= 0:
        return np.empty(0)
    s, bf = cfg.burst_share, cfg.burst_factor
    if cfg.process == "poisson" or s == 0 or bf == 1:
        t = rng.uniform(0.0, T, rng.poisson(cfg.rate_per_s * peak * T))
    else:
        normal = cfg.rate_per_s / (1.0 + s * (bf - 1.0))
        means = np.array([cfg.mean_burst_s * (1.0 - s) / s, cfg.mean_burst_s])
        rates = np.array([normal, normal * bf]) * peak
        first = int(rng.random() < s)
        chunk = int(2 * T / means.sum()) + 8
        lengths: list[np.ndarray] = []
        total, done = 0.0, 0
        while total < T:
            d = rng.exponential(means[(first + done + np.arange(chunk)) % 2])
            lengths.append(d)
            total, done = total + d.sum(), done + chunk
        length = np.concatenate(lengths)
        start = np.cumsum(length) - length
        state = (first + np.arange(len(length))) % 2
        inside = start < T
        start, state = start[inside], state[inside]
        length = np.minimum(length[inside], T - start)
        n = rng.poisson(rates[state] * length)
        t = np.repeat(start, n) + rng.random(n.sum()) * np.repeat(length, n)
    t = np.sort(t)
    t = t[rng.random(len(t)) * peak < rate(t)]
    return t[t < T]


def _replay(
    rng: np.random.Generator, trace: Trace, d: ModelDemand, T: float, rate: Multiplier, peak: float
) -> tuple[np.ndarray, np.ndarray]:
    """Trace arrivals time-scaled to `rate_per_s`, wrapping around; rows of the trace used.

    Copy j of the trace (from a shifted offset) keeps a request with probability
    clip(m(t) - j, 0, 1), so the copies sum to the multiplier m(t) and m = 1 replays exactly.
    """
    if T <= 0 or d.arrivals.rate_per_s <= 0 or peak <= 0:
        return np.empty(0), np.empty(0, dtype=np.intp)
    a = trace.arrival_s
    period = a[-1] * len(a) / (len(a) - 1)
    speed = d.arrivals.rate_per_s * period / len(a)  # trace seconds per simulated second
    times, rows = [], []
    for j in range(max(1, math.ceil(peak))):
        lo = d.trace_offset_s + j * _GOLDEN * period
        hi = lo + T * speed
        for k in range(math.floor(lo / period), math.floor(hi / period) + 1):
            i0, i1 = np.searchsorted(a, [lo - k * period, hi - k * period])
            idx = np.arange(i0, i1)
            t = np.maximum((a[idx] + k * period - lo) / speed, 0.0)
            keep = (rng.random(len(t)) < np.clip(rate(t) - j, 0.0, 1.0)) & (t < T)
            times.append(t[keep])
            rows.append(idx[keep])
    t, r = np.concatenate(times), np.concatenate(rows)
    order = np.argsort(t, kind="stable")
    return t[order], r[order]


def _lognormal(rng: np.random.Generator, mean: float, sigma: float, n: int) -> np.ndarray:
    """Lognormal whose mean (not median) is `mean`."""
    return rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, n)


def _tokens(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 1, _INT32_MAX).astype(np.int32)


def _sizes(
    rng: np.random.Generator, kind: ModelKind, sizes: PromptSizes, n: int
) -> dict[str, np.ndarray]:
    """Prompt sizes by model kind, each lognormal column with its configured mean."""
    cols = {k: np.zeros(n) for k in _COLUMNS if k not in ("arrival_s", "model", "cell")}
    if kind == "speech-to-text":
        cols["audio_s"] = np.clip(_lognormal(rng, sizes.audio_s_mean, sizes.sigma, n), 1.0, 600.0)
        if sizes.output_tokens_mean is None:
            tokens = cols["audio_s"] * _STT_TOKENS_PER_AUDIO_S * _lognormal(rng, 1, sizes.sigma, n)
        else:
            tokens = _lognormal(rng, sizes.output_tokens_mean, sizes.sigma, n)
        cols["output_tokens"] = _tokens(tokens)
        return cols
    if kind == "llm" and sizes.shape is not None:
        cols["input_tokens"], cols["output_tokens"] = TEXT_SHAPES[sizes.shape].draw(rng, n)
        return cols
    mean_in, mean_out = _DEFAULT_TOKENS[kind]
    mean_in = sizes.input_tokens_mean or mean_in
    cols["input_tokens"] = _tokens(_lognormal(rng, mean_in, sizes.sigma, n))
    if kind == "text-to-image":
        cols["resolution_px"][:], cols["steps"][:] = sizes.resolution_px, sizes.steps
        return cols
    mean_out = sizes.output_tokens_mean or mean_out
    cols["output_tokens"] = _tokens(_lognormal(rng, mean_out, sizes.sigma, n))
    cols["images"][:] = sizes.images if kind == "vlm" else 0
    return cols


def typical_prompt(scenario: Scenario, model: str) -> Prompt:
    """A prompt of mean sizes for `model` under the scenario's demand (trace means for trace
    demands); the agents' tools price models and GPUs with it."""
    spec = scenario.model(model)
    demand = next((d for d in scenario.workload.demands if d.model == model), None)
    sizes = demand.sizes if demand is not None else PromptSizes()
    kind = spec.kind
    base = {"id": 0, "model": model, "cell": scenario.cells[0].name, "arrival_s": 0.0}
    if kind == "speech-to-text":
        out = sizes.output_tokens_mean or sizes.audio_s_mean * _STT_TOKENS_PER_AUDIO_S
        return Prompt(**base, audio_s=sizes.audio_s_mean, output_tokens=round(out))
    mean_in, mean_out = _DEFAULT_TOKENS[kind]
    mean_in = sizes.input_tokens_mean or mean_in
    mean_out = sizes.output_tokens_mean or mean_out
    if kind == "llm" and sizes.shape is not None:
        shape = TEXT_SHAPES[sizes.shape]
        mean_in, mean_out = shape.input.mean, shape.output.mean
    if demand is not None and demand.trace is not None and kind in ("llm", "vlm"):
        trace = load_trace(demand.trace)
        mean_in = float(trace.input_tokens.mean())
        mean_out = float(trace.output_tokens.mean())
    if kind == "text-to-image":
        return Prompt(
            **base, input_tokens=round(mean_in), resolution_px=sizes.resolution_px,
            steps=sizes.steps,
        )  # fmt: skip
    images = sizes.images if kind == "vlm" else 0
    return Prompt(**base, input_tokens=round(mean_in), output_tokens=round(mean_out), images=images)
