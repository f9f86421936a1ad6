"""A what-if twin: the simulator run forward from the city's current placement on a workload
drawn from the demand forecast. The agents' tools use it to rank candidate plans and policies;
it sees only telemetry, the catalogue and the forecast, never the future workload."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgeagents.core.notice import Intent, intents_ahead
from edgeagents.core.scenario import CityEvent, DemandShift, Scenario
from edgeagents.core.state import (
    Decision,
    Deployment,
    DeploymentAction,
    Forecast,
    RoutingPolicy,
    Telemetry,
)
from edgeagents.policies.routing import ROUTERS
from edgeagents.sim.bounds import reference_s, standalone_matrix_s
from edgeagents.sim.city import EpisodeOutcomes, SimulatedCity
from edgeagents.sim.metrics import jain
from edgeagents.sim.workload import Workload, generate_workload

TRACE_SHIFT_S = 1800.0
"""The twin replays traces from another stretch, so it cannot see the prompts to come."""


PEAK_DECAY = 0.9
"""Per forecast (planning epoch): how fast a model's remembered peak rate fades."""

RATE_BOUND_Z = 1.64
"""One-sided 95%: a model's rate "as busy as it may be" is the Poisson upper bound at this z
of the arrivals counted in the telemetry window (`rate_upper_bound`)."""


def rate_upper_bound(rate_per_s: float, span_s: float, z: float = RATE_BOUND_Z) -> float:
    """The upper confidence bound of a Poisson rate seen as `rate_per_s` over `span_s`: wide
    on a few seconds or a few prompts (a model seen once in 5 s may well be busier)."""
    n = rate_per_s * span_s
    return (n + z * z / 2 + z * math.sqrt(n + z * z / 4)) / span_s


SHIFT_Z = 3.0
"""A plan's forecast is refuted when a model's arrivals over a window exceed it by this many
standard deviations (Poisson): rare by chance, so a re-plan means demand really moved."""


def forecast_refuted(
    forecast: Forecast | None, telemetry: Telemetry, planned_at_s: float | None
) -> list[str]:
    """Models whose arrivals over a full telemetry window, seen wholly since the plan, are
    above what the plan's forecast allows (`SHIFT_Z`): the plan was made for demand that is
    not there, and waiting for the next epoch lets the queues grow."""
    if forecast is None or planned_at_s is None:
        return []
    span = telemetry.window_s
    if telemetry.time_s < span or telemetry.time_s - planned_at_s < span:
        return []
    out = []
    for m in telemetry.models:
        expected = forecast.rates_per_s.get(m.model, 0.0) * span
        limit = expected + SHIFT_Z * math.sqrt(expected) + SHIFT_Z**2
        if m.arrivals_per_s * span > limit:
            out.append(m.model)
    return out


def forecast_demand(
    telemetry: Telemetry, previous: Forecast | None = None, *, smoothing: float = 0.5
) -> Forecast:
    """Exponentially smoothed arrival rates and prompt sizes from the telemetry window, and
    each model's decaying peak windowed rate (from full windows only: a partial one is noise)."""
    rates, cells = telemetry.window_demand()
    sizes_in = {m.model: m.mean_input_tokens for m in telemetry.models
                if m.mean_input_tokens is not None}  # fmt: skip
    sizes_out = {m.model: m.mean_output_tokens for m in telemetry.models
                 if m.mean_output_tokens is not None}  # fmt: skip
    peaks = dict(previous.peak_rates_per_s) if previous is not None else {}
    if telemetry.time_s >= telemetry.window_s:
        peaks = {m: max(r, PEAK_DECAY * peaks.get(m, 0.0)) for m, r in rates.items()}
    if previous is not None:

        def blend(now: dict[str, float], before: dict[str, float]) -> dict[str, float]:
            return {k: smoothing * v + (1 - smoothing) * before.get(k, v) for k, v in now.items()}

        rates = blend(rates, previous.rates_per_s)
        cells = blend(cells, previous.cell_weights) if cells else dict(previous.cell_weights)
        # a model with nothing measured this window keeps its last size
        sizes_in = previous.input_tokens | blend(sizes_in, previous.input_tokens)
        sizes_out = previous.output_tokens | blend(sizes_out, previous.output_tokens)
    return Forecast(
        rates_per_s=rates, cell_weights=cells, peak_rates_per_s=peaks, input_tokens=sizes_in,
        output_tokens=sizes_out,
    )  # fmt: skip


class Prediction(BaseModel):
    """What the twin expects over its horizon."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean_latency_s: float
    jain: float
    per_model_mean_s: dict[str, float]
    refused: int
    prompts: int
    objective_s: float | None = None
    """With operator priorities or service targets in force: the priority-weighted mean
    latency, plus the overall mean times each target's relative excess. None: the mean."""

    def score(self, jain_target: float = 0.93) -> float:
        """Lower is better: mean latency (or the operators' objective), inflated when fairness
        falls below the target."""
        base = self.mean_latency_s if self.objective_s is None else self.objective_s
        return base * (1.0 + 3.0 * max(0.0, jain_target - self.jain))


class WhatIf:
    """Evaluates placements and routing on one forecast workload (common random numbers, so
    candidates are compared on the same prompts).

    Args:
        scenario: The city (catalogue, topology, payloads).
        forecast: Expected demand.
        telemetry: Current state: which sites and links are down.
        horizon_s: How far ahead to simulate.
        seed: Seeds the twin's workload.
        intents: Operator intents (any: those acting inside the horizon are kept): surges and
            maintenance windows inside the horizon enter
            the twin's workload and events; targets and priorities its score.
        baselines: Notice id -> model -> the forecast rate when the notice was read: a
            surge's window has `factor` times that rate (the live forecast may already hold
            part of the surge).
    """

    def __init__(
        self,
        scenario: Scenario,
        forecast: Forecast,
        telemetry: Telemetry,
        *,
        horizon_s: float = 120.0,
        seed: int = 0,
        intents: Sequence[Intent] = (),
        baselines: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.horizon_s = horizon_s
        now = telemetry.time_s
        self.intents = intents_ahead(intents, now, horizon_s)
        self._given = (scenario, forecast, telemetry, seed, baselines)
        self.scenario = _twin_scenario(
            scenario, forecast, telemetry, horizon_s, self.intents, baselines or {}
        )
        fresh = sized_like(
            generate_workload(self.scenario, duration_s=horizon_s, seed=seed), forecast, telemetry
        )
        self.current = [r.deployment for r in telemetry.replicas]
        """The live replicas: a run from them starts with their backlog (`live_backlog`)."""
        self.backlog, rows = live_backlog(telemetry, fresh)
        self.workload = fresh.with_copies_first(rows)
        matrix = standalone_matrix_s(self.scenario, self.workload)
        self.references = reference_s(self.scenario, self.workload, matrix)
        self.evaluations = 0
        self.simulated = 0
        """Prompts simulated so far, over every evaluation (what a prompt budget counts)."""
        self.priorities = operator_priorities(self.intents)
        self.targets = {m: i.bound_s for i in self.intents if i.kind == "target"
                        for m in i.models if i.bound_s}  # fmt: skip

    def pessimistic(self, models: Iterable[str]) -> WhatIf:
        """The same twin with each of `models` as busy as its window allows (each rate raised
        to `rate_upper_bound` of its window count): what a plan that takes replicas from them
        must also survive, since on a short or quiet window their rates are mostly noise."""
        scenario, forecast, telemetry, seed, baselines = self._given
        span = min(telemetry.time_s, telemetry.window_s)
        if span <= 0:
            return self
        seen, _ = telemetry.window_demand()
        rates = dict(forecast.rates_per_s)
        for m in models:
            rates[m] = max(rates.get(m, 0.0), rate_upper_bound(seen.get(m, 0.0), span))
        busier = forecast.model_copy(update={"rates_per_s": rates})
        return WhatIf(
            scenario, busier, telemetry, horizon_s=self.horizon_s, seed=seed,
            intents=self.intents, baselines=baselines,
        )  # fmt: skip

    def evaluate(
        self,
        deployments: Sequence[Deployment],
        actions: Sequence[DeploymentAction] = (),
        *,
        router: str = "greedy",
        routing: RoutingPolicy | None = None,
    ) -> Prediction:
        """Run the twin from `deployments` (warm) with `actions` applied at time 0."""
        return self.predict(self.simulate(deployments, actions, router=router, routing=routing))

    def simulate(
        self,
        deployments: Sequence[Deployment],
        actions: Sequence[DeploymentAction] = (),
        *,
        router: str = "greedy",
        routing: RoutingPolicy | None = None,
    ) -> EpisodeOutcomes:
        """The twin's per-prompt outcomes, for a look past its score (e.g. refusal reasons)."""
        self.evaluations += 1
        self.simulated += len(self.workload)
        city = SimulatedCity(
            self.scenario, self.workload, ROUTERS.create(router), deployments=deployments,
            backlog=self.backlog if list(deployments) == self.current else (),
        )  # fmt: skip
        if actions or routing is not None:
            city.apply(Decision(time_s=0.0, actions=list(actions), routing=routing))
        city.advance(self.horizon_s + self.scenario.control.drain_limit_s)
        return city.finish()

    def predict(self, out: EpisodeOutcomes) -> Prediction:
        """Score a twin run: mean latency with each refusal charged the horizon, and Jain."""
        lat = out.latency_s
        served = ~np.isnan(lat)
        per_model: dict[str, float] = {}
        speeds = []
        for mi, m in enumerate(self.scenario.models):
            sel = served & (self.workload.model == mi)
            if sel.any():
                per_model[m.name] = float(lat[sel].mean())
                speeds.append(self.references[m.name] / per_model[m.name])
        refused = int((~served).sum())
        penalty = self.horizon_s
        total = float(lat[served].sum()) + refused * penalty
        mean = total / max(1, len(lat))
        objective = None
        if self.priorities or self.targets:
            charged = np.where(served, lat, penalty)
            names = self.scenario.model_names
            w = np.array([self.priorities.get(n, 1.0) for n in names])[self.workload.model]
            objective = float((w * charged).sum() / max(1e-9, w.sum())) if len(lat) else 0.0
            for m, bound in self.targets.items():
                excess = per_model.get(m, 0.0) / bound - 1.0
                objective += mean * max(0.0, excess)
        return Prediction(
            mean_latency_s=mean,
            jain=jain(speeds) if speeds else 1.0,
            per_model_mean_s=per_model,
            refused=refused,
            prompts=len(lat),
            objective_s=objective,
        )


SIZE_Z = 2.0
"""The twin resizes a model's prompts only when the city's mean size is this many standard
errors from its own (the window's prompts, with the twin's spread): sizes are heavy-tailed,
and a window of a few dozen prompts often differs by chance."""

SIZE_FACTOR_BOUNDS = (0.25, 4.0)
"""How far `sized_like` may scale a model's prompts."""


def sized_like(workload: Workload, forecast: Forecast, telemetry: Telemetry) -> Workload:
    """`workload` with a model's token counts scaled so their mean is the forecast's, where
    the window's evidence says they differ (`SIZE_Z`): the twin replays another stretch of
    the trace (or draws from a fitted shape), whose prompts may be shorter or longer than the
    city's now, and would misjudge the work each prompt brings (and what a replica is worth).
    A model whose sizes the city does not report keeps the twin's own (the Ray Serve city
    reports none: its engines' token counts are not the profiled model's)."""
    span = min(telemetry.time_s, telemetry.window_s)
    seen = {m.model: m for m in telemetry.models}
    columns = {"input_tokens": workload.input_tokens, "output_tokens": workload.output_tokens}
    sizes = {"input_tokens": forecast.input_tokens, "output_tokens": forecast.output_tokens}
    lo, hi = SIZE_FACTOR_BOUNDS
    resized: dict[str, np.ndarray] = {}
    for k, m in enumerate(workload.model_names):
        window = seen.get(m)
        rows = workload.model == k
        if window is None or not rows.any():
            continue
        counts = {"input_tokens": round(window.arrivals_per_s * span),
                  "output_tokens": window.served}  # fmt: skip
        for col, col_sizes in sizes.items():
            want, n = col_sizes.get(m), counts[col]
            v = columns[col][rows].astype(np.float64)
            have = float(v.mean())
            if not want or have <= 0 or n < 1:
                continue
            if abs(want - have) <= SIZE_Z * float(v.std()) / math.sqrt(n):
                continue
            factor = min(hi, max(lo, want / have))
            out = resized.setdefault(col, columns[col].astype(np.float64))
            out[rows] = np.where(v > 0, np.maximum(1.0, np.rint(v * factor)), 0.0)
    return dataclasses.replace(workload, **resized) if resized else workload


def live_backlog(telemetry: Telemetry, workload: Workload) -> tuple[list[int], np.ndarray]:
    """The prompts waiting at each live replica (its queue, and half its running batch: on
    average half done) as copies of the same model's prompts in `workload`: a twin started
    from empty queues misjudges a city already behind. Returns the count per replica, in
    telemetry order, and the rows to copy."""
    up = {s.site for s in telemetry.sites if s.up}
    none = np.empty(0, dtype=np.int64)
    by_model = {m: np.flatnonzero(workload.model == k) for k, m in enumerate(workload.model_names)}
    counts: list[int] = []
    rows: list[np.ndarray] = []
    for r in telemetry.replicas:
        same = by_model.get(r.deployment.model, none)
        k = r.queue_len + (r.running + 1) // 2 if r.deployment.site in up and len(same) else 0
        counts.append(k)
        rows.append(same[np.arange(k) % max(1, len(same))])
    return counts, np.concatenate(rows) if rows else none


def operator_priorities(intents: Sequence[Intent]) -> dict[str, float]:
    """Model -> the product of the priority factors of the priority intents given."""
    out: dict[str, float] = {}
    for i in intents:
        if i.kind == "priority" and i.factor:
            for m in i.models:
                out[m] = out.get(m, 1.0) * i.factor
    return out


def intent_shifts(
    scenario: Scenario,
    forecast: Forecast,
    telemetry: Telemetry,
    horizon_s: float,
    intents: Sequence[Intent],
    baselines: dict[str, dict[str, float]],
) -> tuple[list[DemandShift], list[CityEvent]]:
    """The twin's demand shifts and events for the operator intents inside its horizon, in
    the twin's clock (0 = now). A surge from named cells adds its extra demand there."""
    now = telemetry.time_s
    up = {s.site for s in telemetry.sites if s.up}
    users = {c.name: c.users for c in scenario.cells}
    total_users = sum(users.values()) or 1
    shifts: list[DemandShift] = []
    events: list[CityEvent] = []
    for it in intents:
        assert it.start_s is not None and it.end_s is not None
        a, b = max(0.0, it.start_s - now), it.end_s - now
        if it.kind == "surge" and it.factor:
            for m in it.models:
                cur = forecast.rates_per_s.get(m, 0.0)
                base = baselines.get(it.notice_id, {}).get(m, cur)
                f = base * it.factor / cur if cur > 0 else 1.0
                if f <= 1.0:
                    continue
                shifts.append(DemandShift(at_s=a, model=m, factor=f))
                if b < horizon_s:
                    shifts.append(DemandShift(at_s=b, model=m, factor=1.0 / f))
                named = [c for c in it.cells if c in users]
                share = sum(users[c] for c in named) / total_users
                if named and share > 0:
                    k = 1.0 + (f - 1.0) / share
                    for c in named:
                        shifts.append(DemandShift(at_s=a, model=m, cell=c, factor=k))
                        if b < horizon_s:
                            shifts.append(DemandShift(at_s=b, model=m, cell=c, factor=1 / k))
        elif it.kind == "maintenance":
            for s in it.sites:
                if s in up:
                    events.append(CityEvent(at_s=a, kind="site_down", site=s))
                    if b < horizon_s:
                        events.append(CityEvent(at_s=b, kind="site_up", site=s))
    return shifts, events


def _twin_scenario(
    scenario: Scenario,
    forecast: Forecast,
    telemetry: Telemetry,
    horizon_s: float,
    intents: Sequence[Intent] = (),
    baselines: dict[str, dict[str, float]] | None = None,
) -> Scenario:
    demands = [
        d.model_copy(
            update={
                "arrivals": d.arrivals.model_copy(
                    update={"rate_per_s": forecast.rates_per_s.get(d.model, 0.0)}
                ),
                "trace_offset_s": d.trace_offset_s + TRACE_SHIFT_S,
            }
        )
        for d in scenario.workload.demands
    ]
    cells = scenario.cells
    if forecast.cell_weights and sum(forecast.cell_weights.values()) > 0:
        cells = [
            c.model_copy(update={"users": round(10_000 * forecast.cell_weights.get(c.name, 0.0))})
            for c in scenario.cells
        ]
        if sum(c.users for c in cells) == 0:
            cells = scenario.cells
    events = [CityEvent(at_s=0.0, kind="site_down", site=s.site) for s in telemetry.sites
              if not s.up]  # fmt: skip
    events += [CityEvent(at_s=0.0, kind="link_down", link=lk) for lk in telemetry.down_links]
    shifts, planned = intent_shifts(
        scenario.model_copy(update={"cells": cells}),
        forecast,
        telemetry,
        horizon_s,
        intents,
        baselines or {},
    )
    events += planned
    workload = scenario.workload.model_copy(
        update={"demands": demands, "shifts": shifts, "diurnal": None, "mobility": None}
    )
    control = scenario.control.model_copy(update={"drain_limit_s": min(60.0, horizon_s)})
    return scenario.model_copy(
        update={
            "workload": workload,
            "cells": cells,
            "events": sorted(events, key=lambda e: e.at_s),
            "notices": [],
            "duration_s": horizon_s,
            "control": control,
            "placement": {},
        }
    )
