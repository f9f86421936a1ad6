"""Metrics as DESIGN.md defines them: latency percentiles, SLO attainment, the normalized Jain
index over model types (raw and rescaled, always named), the ratio to the lower bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario
    from edgeagents.sim.outcomes import EpisodeOutcomes
    from edgeagents.sim.workload import Workload


def jain(values: Sequence[float] | np.ndarray) -> float:
    """Jain's index (sum x)^2 / (K sum x^2), in [1/K, 1]; 1 when all equal."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("Jain's index needs at least one value")
    if np.any(x < 0):
        raise ValueError("Jain's index is defined for non-negative values")
    sq = float(np.sum(x**2))
    return 1.0 if sq == 0 else float(np.sum(x) ** 2 / (x.size * sq))


def jain_rescaled(j: float, k: int) -> float:
    """(J - 1/K) / (1 - 1/K): 0 when one type gets everything, 1 when all are equal."""
    if k <= 1:
        return 1.0
    return (j - 1.0 / k) / (1.0 - 1.0 / k)


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelFigures(_Result):
    model: str
    served: int
    refused: int
    mean_latency_s: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    p99_latency_s: float | None
    slo_s: float
    slo_attainment: float = Field(description="Share of all its prompts served within the SLO.")
    reference_s: float = Field(description="Stand-alone latency of a median prompt (ref_k).")
    normalized_speed: float | None = Field(description="x_k = ref_k / mean latency_k.")


class PolicyResult(_Result):
    """One policy's figures on one episode. `jain` is the normalized Jain index J over model
    types of x_k = ref_k / mean_latency_k; `jain_rescaled` is (J - 1/K) / (1 - 1/K)."""

    policy: str
    prompts: int
    served: int
    refused: int
    refused_by_reason: dict[str, int]
    mean_latency_s: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    p99_latency_s: float | None
    slo_attainment: float
    jain: float | None
    jain_rescaled: float | None
    lower_bound_mean_s: float
    lower_bound_ratio: float | None = Field(
        description="Mean latency / mean lower bound of the same (served) prompts."
    )
    ratio_to_round_robin: float | None = None
    per_model: list[ModelFigures]
    mean_breakdown_s: dict[str, float] = Field(
        description="Mean of each latency component over served prompts."
    )
    wall_s: float = 0.0
    extra: dict[str, float | int | str] = Field(default_factory=dict)


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if x.size else None


def summarize(
    policy: str,
    scenario: Scenario,
    workload: Workload,
    outcomes: EpisodeOutcomes,
    references: dict[str, float],
    lower_bound: np.ndarray,
    *,
    wall_s: float = 0.0,
) -> PolicyResult:
    """Figures of one episode from its per-prompt outcomes."""
    from edgeagents.core.state import REFUSAL_REASONS

    lat = outcomes.latency_s
    served = ~np.isnan(lat)
    per_model: list[ModelFigures] = []
    speeds: list[float] = []
    slo_ok = 0
    for mi, m in enumerate(scenario.models):
        sel = workload.model == mi
        if not sel.any():
            continue
        ml = lat[sel & served]
        ok = int(np.sum(ml <= m.slo_s))
        slo_ok += ok
        ref = references[m.name]
        mean = float(ml.mean()) if ml.size else None
        speed = ref / mean if mean else None
        if speed is not None:
            speeds.append(speed)
        per_model.append(
            ModelFigures(
                model=m.name,
                served=int(ml.size),
                refused=int(np.sum(sel & ~served)),
                mean_latency_s=mean,
                p50_latency_s=_pct(ml, 50),
                p95_latency_s=_pct(ml, 95),
                p99_latency_s=_pct(ml, 99),
                slo_s=m.slo_s,
                slo_attainment=ok / int(sel.sum()),
                reference_s=ref,
                normalized_speed=speed,
            )
        )
    all_lat = lat[served]
    mean = float(all_lat.mean()) if all_lat.size else None
    lb = float(lower_bound.mean()) if lower_bound.size else 0.0
    lb_served = float(lower_bound[served].mean()) if all_lat.size else 0.0
    j = jain(speeds) if speeds else None
    refused_codes = outcomes.refused[outcomes.refused >= 0]
    by_reason = np.bincount(refused_codes, minlength=len(REFUSAL_REASONS))
    breakdown = {
        name: float(getattr(outcomes, f"{name}_s")[served].mean()) if all_lat.size else 0.0
        for name in ("uplink", "backhaul", "queue", "cold", "infer")
    }
    return PolicyResult(
        policy=policy,
        prompts=int(lat.size),
        served=int(served.sum()),
        refused=int((~served).sum()),
        refused_by_reason={r: int(c) for r, c in zip(REFUSAL_REASONS, by_reason, strict=True) if c},
        mean_latency_s=mean,
        p50_latency_s=_pct(all_lat, 50),
        p95_latency_s=_pct(all_lat, 95),
        p99_latency_s=_pct(all_lat, 99),
        slo_attainment=slo_ok / max(1, int(lat.size)),
        jain=j,
        jain_rescaled=jain_rescaled(j, len(speeds)) if j is not None else None,
        lower_bound_mean_s=lb,
        lower_bound_ratio=mean / lb_served if mean is not None and lb_served > 0 else None,
        per_model=per_model,
        mean_breakdown_s=breakdown,
        wall_s=wall_s,
    )
