"""A serve run replayed in the simulator, the run-style figures of both, and the fidelity figure.

The replay takes exactly what the real run did: the prompts the load generator sent (sizes as
sent, output tokens as generated, send times, cells), the city's timeline (the initial
placement, then each routing policy and deployment action when it took effect, a load when its
server became ready), and the site the gateway chose for each prompt. It runs them in
`SimulatedCity` on the calibrated scenario (serving/calibration.py). What is left to the
simulator is what it is for: emulated network time, queueing, batching and inference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.dataplane import Router
from edgeagents.core.state import REFUSAL_REASONS
from edgeagents.experiments.bench import LOWER_BOUND, bound_outcomes
from edgeagents.sim.bounds import lower_bound_s, reference_s, standalone_matrix_s
from edgeagents.sim.city import EpisodeOutcomes, SimulatedCity
from edgeagents.sim.metrics import PolicyResult, summarize
from edgeagents.sim.workload import Workload

if TYPE_CHECKING:
    from edgeagents.core.dataplane import CityView, R
    from edgeagents.core.scenario import Scenario
    from edgeagents.core.state import Decision
    from serving.loadgen import SentPrompt

FIDELITY_NOTE = (
    "measured: client-side end to end (load generator's clock): emulated network + HTTP + "
    "Serve proxy + gateway + server queue + inference. simulated: the replay's end to end "
    "(emulated network + queue + cold start + inference) plus overhead_s, the median gateway "
    "overhead (client latency - network - server queue - inference) of the requests the "
    "profiles were fitted on. models/overall: profiles timed one request at a time before the "
    "load; run_fit: profiles fitted to the run's own batches. error = simulated / measured - 1, "
    "over the prompts served in both."
)


def replay_workload(
    scenario: Scenario, prompts: Sequence[SentPrompt]
) -> tuple[Workload, list[int]]:
    """The sent prompts as a `Workload` in send order, and `order[j]`: the index in `prompts`
    of workload prompt j. Output tokens are those generated where the answer said so."""
    order = sorted(
        (k for k, p in enumerate(prompts) if p.sent_s is not None),
        key=lambda k: (prompts[k].sent_s, k),
    )
    ps = [prompts[k] for k in order]
    models = tuple(scenario.model_names)
    cells = tuple(c.name for c in scenario.cells)
    return (
        Workload(
            model_names=models,
            cell_names=cells,
            arrival_s=np.array([max(0.0, p.sent_s or 0.0) for p in ps], dtype=np.float64),
            model=np.array([models.index(p.model) for p in ps]),
            cell=np.array([cells.index(p.cell or cells[0]) for p in ps]),
            input_tokens=np.array([p.input_tokens for p in ps]),
            output_tokens=np.array(
                [
                    p.output_tokens if p.completion_tokens is None else p.completion_tokens
                    for p in ps
                ]
            ),
            images=np.array([p.images for p in ps]),
            audio_s=np.array([p.audio_s for p in ps]),
            resolution_px=np.array([p.resolution_px for p in ps]),
            steps=np.array([p.steps for p in ps]),
        ),
        order,
    )


class ReplayRouter(Router):
    """Sends each prompt to the site the real gateway chose for it (when a replica is there),
    else to the replica with the least predicted latency."""

    name = "replay"

    def __init__(self, sites: Sequence[str | None]) -> None:
        self.sites = list(sites)

    def route(self, i: int, candidates: list[R], city: CityView) -> R:
        want = self.sites[i]
        if want is not None:
            for r in candidates:
                if city.scenario.sites[r.site].name == want:
                    return r
        return min(candidates, key=lambda r: (city.predict_s(i, r), r.id))


def replay(
    scenario: Scenario,
    workload: Workload,
    timeline: Sequence[Decision],
    sites: Sequence[str | None],
    *,
    seed: int = 0,
) -> EpisodeOutcomes:
    """Run `workload` in the simulated city from `scenario.placement`, applying each decision
    of `timeline` at its time, each prompt routed to `sites[j]`; every prompt ends served or
    refused."""
    city = SimulatedCity(scenario, workload, ReplayRouter(sites), seed=seed)
    for decision in sorted(timeline, key=lambda d: d.time_s):
        city.advance(max(decision.time_s, city.now))
        city.apply(decision)
    last = float(workload.arrival_s[-1]) if len(workload) else 0.0
    city.advance(max(last + scenario.control.drain_limit_s, city.now))
    return city.finish()


def measured_outcomes(scenario: Scenario, ps: Sequence[SentPrompt]) -> EpisodeOutcomes:
    """The real run's per-prompt outcomes in the simulator's columns (workload order): client
    latency, the emulated network under `uplink_s`, the server's queue and inference time.
    A refused prompt gets the simulator's reason code where the gateway's code is one of
    them, else `model_not_deployed`'s (the report keeps the gateway's own codes)."""
    n = len(ps)
    served = np.array([p.served for p in ps], dtype=bool)

    def col(attr: str) -> np.ndarray:
        return np.array([getattr(p, attr) or 0.0 if p.served else 0.0 for p in ps], dtype=float)

    sites = {s: i for i, s in enumerate(scenario.site_names)}
    codes = {r: i for i, r in enumerate(REFUSAL_REASONS)}
    return EpisodeOutcomes(
        latency_s=np.where(served, col("latency_s"), np.nan),
        site=np.array([sites.get(p.site or "", -1) if p.served else -1 for p in ps], np.int16),
        uplink_s=col("network_s"),
        backhaul_s=np.zeros(n),
        queue_s=col("queue_s"),
        cold_s=np.zeros(n),
        infer_s=col("infer_s"),
        refused=np.array(
            [-1 if p.served else codes.get(p.code or "", 0) for p in ps], dtype=np.int8
        ),
        done_s=np.where(served, np.array([(p.sent_s or 0) + (p.latency_s or 0) for p in ps]), 0),
    )


class ModelFidelity(BaseModel):
    """Measured against simulated mean latency of one model (or `overall`)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    prompts: int = Field(description="Prompts served both in the run and in the replay.")
    measured_mean_s: float | None
    simulated_mean_s: float | None = Field(description="Replay mean plus overhead_s.")
    error: float | None = Field(description="simulated / measured - 1.")
    overhead_s: float = Field(description="Gateway overhead added to the simulated figure.")
    calibration: str = Field(description="Where its profile came from: probes, run or none.")
    measured_parts_s: dict[str, float] = Field(
        description="Means of: network (emulated), queue and infer (server), overhead (rest)."
    )
    simulated_parts_s: dict[str, float] = Field(
        description="Means of: network, queue, cold, infer (replay), overhead (calibrated)."
    )


class FidelityFigures(BaseModel):
    """The fidelity figure with one set of profiles."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelFidelity]
    overall: ModelFidelity


class Fidelity(FidelityFigures):
    """The fidelity figure: with profiles timed before the load (`models`, `overall`: a
    prediction), and with profiles fitted to the run's own server times (`run_fit`: what is
    left when the service times are right: queueing, batching, network, overhead)."""

    note: str = FIDELITY_NOTE
    run_fit: FidelityFigures | None = None


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else 0.0


def fidelity(
    scenario: Scenario,
    workload: Workload,
    measured: EpisodeOutcomes,
    simulated: EpisodeOutcomes,
    overhead_s: dict[str, float],
    sources: dict[str, str],
) -> FidelityFigures:
    """Per model and overall: mean latency measured and simulated over prompts served in both."""
    both = ~np.isnan(measured.latency_s) & ~np.isnan(simulated.latency_s)
    over = np.array([overhead_s.get(m, 0.0) for m in workload.model_names])[workload.model]

    def one(name: str, sel: np.ndarray, source: str) -> ModelFidelity:
        sel = sel & both
        meas, sim = measured.latency_s[sel], simulated.latency_s[sel] + over[sel]
        m, s = (float(meas.mean()), float(sim.mean())) if sel.any() else (None, None)
        parts_m = {
            "network": _mean(measured.uplink_s[sel]),
            "queue": _mean(measured.queue_s[sel]),
            "infer": _mean(measured.infer_s[sel]),
        }
        parts_m["overhead"] = (m or 0.0) - sum(parts_m.values()) if m is not None else 0.0
        return ModelFidelity(
            model=name,
            prompts=int(sel.sum()),
            measured_mean_s=m,
            simulated_mean_s=s,
            error=s / m - 1 if m and s is not None else None,
            overhead_s=_mean(over[sel]),
            calibration=source,
            measured_parts_s=parts_m,
            simulated_parts_s={
                "network": _mean(simulated.uplink_s[sel] + simulated.backhaul_s[sel]),
                "queue": _mean(simulated.queue_s[sel]),
                "cold": _mean(simulated.cold_s[sel]),
                "infer": _mean(simulated.infer_s[sel]),
                "overhead": _mean(over[sel]),
            },
        )

    models = [
        one(m, workload.model == mi, sources.get(m, "none"))
        for mi, m in enumerate(workload.model_names)
        if (workload.model == mi).any()
    ]
    overall = one("overall", np.ones(len(workload), dtype=bool), "-")
    return FidelityFigures(models=models, overall=overall)


def serve_results(
    policy: str,
    scenario: Scenario,
    workload: Workload,
    measured: EpisodeOutcomes,
    simulated: dict[str, tuple[EpisodeOutcomes, dict[str, float]]],
    *,
    refused_codes: dict[str, int],
) -> list[PolicyResult]:
    """The rows of `edgeagents run`'s table: the run as measured, each replay (label ->
    outcomes and the gateway overhead per model added to them) and the zero-queue bound, all
    by `summarize`. References (ref_k of the Jain index) and the bound are stand-alone
    latencies on `scenario`'s profiles plus the first replay's overhead: what a lone prompt
    would measure here."""

    def per_prompt(overhead_s: dict[str, float]) -> np.ndarray:
        return np.array([overhead_s.get(m, 0.0) for m in workload.model_names])[workload.model]

    over = per_prompt(next(iter(simulated.values()))[1])
    matrix = standalone_matrix_s(scenario, workload) + over[:, None]
    bound = lower_bound_s(matrix)
    refs = reference_s(scenario, workload, matrix)
    meas = summarize(f"{policy} (measured)", scenario, workload, measured, refs, bound)
    served = ~np.isnan(measured.latency_s)
    meas = meas.model_copy(
        update={
            "refused_by_reason": refused_codes,
            "mean_breakdown_s": {
                "network": _mean(measured.uplink_s[served]),
                "queue": _mean(measured.queue_s[served]),
                "infer": _mean(measured.infer_s[served]),
                "overhead": _mean(
                    measured.latency_s[served]
                    - measured.uplink_s[served]
                    - measured.queue_s[served]
                    - measured.infer_s[served]
                ),
            },
        }
    )
    rows = [meas]
    for label, (outcomes, overhead_s) in simulated.items():
        extra = per_prompt(overhead_s)
        shifted = dataclasses.replace(outcomes, latency_s=outcomes.latency_s + extra)
        sim = summarize(f"{policy} ({label})", scenario, workload, shifted, refs, bound)
        sim.mean_breakdown_s["overhead"] = _mean(extra[~np.isnan(outcomes.latency_s)])
        rows.append(sim)
    rows.append(summarize(LOWER_BOUND, scenario, workload, bound_outcomes(bound), refs, bound))
    return rows
