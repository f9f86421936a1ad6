"""The parameters of a generated region (`edgeagents.core.region`), each default stated once.

Ranges are closed and draws uniform in them; GPU types are the built-in datasheet ones.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeagents.core.profiles import BUILTIN_GPU_TYPES

PROMPTS_PER_S_PER_1000_USERS = 0.7
"""Demand per 1,000 resident users, all models together: bristol's 8.1 prompts/s over its
11,500 users (0.704), rounded. Each model takes bristol's share of it."""

Role = Literal["edge", "hub", "core"]
"""A site's place: an access-ring member, an access-ring hub, or a group's aggregation hub."""

CPU_CORES_PER_GPU: dict[str, int] = {
    "L4": 16, "A10": 16, "RTX-4090": 16, "L40S": 32, "A100-80GB": 32, "H200": 32,
}  # fmt: skip
"""Host cores per installed GPU (bristol's sites: 2x A100 with 64 cores, an L40S with 32)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Span(_Frozen):
    """A closed range that draws are uniform in, rounded to `decimals`."""

    lo: float = Field(ge=0)
    hi: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Span:
        if self.lo > self.hi:
            raise ValueError(f"lo {self.lo:g} is above hi {self.hi:g}")
        return self

    def draw(self, rng: np.random.Generator, decimals: int) -> float:
        return round(float(rng.uniform(self.lo, self.hi)), decimals)


class TierSpec(_Frozen):
    """The links of one backhaul tier: one-way latency and capacity ranges."""

    latency_ms: Span
    bandwidth_gbps: Span

    @model_validator(mode="after")
    def _positive(self) -> TierSpec:
        if self.bandwidth_gbps.lo <= 0:
            raise ValueError("bandwidth_gbps.lo: a link needs a capacity above 0")
        return self


class GpuMix(_Frozen):
    """GPUs of a site of one role: a type drawn by weight, then a count in [min, max]."""

    types: dict[str, float] = Field(min_length=1, description="Built-in GPU type -> weight.")
    min_count: int = Field(ge=1, le=64)
    max_count: int = Field(ge=1, le=64)

    @model_validator(mode="after")
    def _known(self) -> GpuMix:
        for name, weight in self.types.items():
            if name not in BUILTIN_GPU_TYPES:
                known = ", ".join(sorted(BUILTIN_GPU_TYPES))
                raise ValueError(f"types: unknown GPU type {name!r} (built-in: {known})")
            if weight <= 0:
                raise ValueError(f"types.{name}: a weight is above 0")
        if self.min_count > self.max_count:
            raise ValueError("min_count is above max_count")
        return self


DEFAULT_GPU_MIX: dict[Role, GpuMix] = {
    "edge": GpuMix(
        types={"L4": 0.35, "RTX-4090": 0.25, "A10": 0.2, "L40S": 0.2}, min_count=1, max_count=2
    ),
    "hub": GpuMix(types={"A100-80GB": 0.7, "H200": 0.3}, min_count=1, max_count=2),
    "core": GpuMix(types={"H200": 0.6, "A100-80GB": 0.4}, min_count=2, max_count=4),
}
"""Inference cards at the edge, datacentre GPUs at hubs (H100 is not a built-in type)."""


class RegionSpec(_Frozen):
    """What a generated region is made of; every default is stated once, here."""

    sites: int = Field(ge=1, le=10_000, description="Edge sites in the region.")
    seed: int = Field(default=0, ge=0, description="Seed of every draw.")
    ring_size: int = Field(default=6, ge=2, le=64, description="Sites per access ring (at most).")
    rings_per_group: int = Field(
        default=4, ge=2, le=64, description="Access rings per aggregation group (at most)."
    )
    access: TierSpec = TierSpec(latency_ms=Span(lo=0.2, hi=1.5), bandwidth_gbps=Span(lo=1, hi=10))
    aggregation: TierSpec = TierSpec(
        latency_ms=Span(lo=1.0, hi=3.0), bandwidth_gbps=Span(lo=10, hi=40)
    )
    core: TierSpec = TierSpec(latency_ms=Span(lo=3.0, hi=8.0), bandwidth_gbps=Span(lo=40, hi=100))
    cells_per_site: dict[Role, int] = Field(
        default={"edge": 1, "hub": 2, "core": 3}, description="Radio cells by site role."
    )
    users_per_cell: Span = Field(default=Span(lo=300, hi=3000), description="Residents, drawn.")
    uplink_mbps: Span = Span(lo=25, hi=40)
    downlink_mbps: Span = Span(lo=150, hi=250)
    radio_rtt_ms: Span = Span(lo=8, hi=12)
    gpu_mix: dict[Role, GpuMix] = Field(default=DEFAULT_GPU_MIX)
    max_replicas_per_gpu: int = Field(
        default=2, ge=1, le=8, description="Initial replicas a GPU may hold (memory permitting)."
    )
    rate_per_1000_users: float = Field(
        default=PROMPTS_PER_S_PER_1000_USERS, gt=0, description="Prompts/s per 1,000 users."
    )
    prompts_per_s: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="The whole region's offered load, prompts/s; None: `rate_per_1000_users` "
        "sets it. When given, the demand is rescaled to it (split by population as always) and "
        "every site's GPU count by the same factor, so the capacity keeps up with the load.",
    )

    @model_validator(mode="after")
    def _complete(self) -> RegionSpec:
        for role in ("edge", "hub", "core"):
            if role not in self.gpu_mix or role not in self.cells_per_site:
                raise ValueError(f"gpu_mix and cells_per_site need the role {role!r}")
            if self.cells_per_site[role] < 1:
                raise ValueError(f"cells_per_site.{role}: a site has at least one cell")
        return self
