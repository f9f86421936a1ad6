"""The suite's one load rule: every scenario's demand is scaled so that its estimated
utilisation equals the reference city's (bristol as shipped, whose load was set where naive
routing builds queues and a good policy stays stable).

Estimated utilisation = total arrival rate / estimated capacity. The capacity is a fluid
estimate: every GPU serves the city's prompt mix at each model's full batch, a prompt of
model k costing its setup (prefill, encoders, VAE: it stalls the replica) plus its iterations
at 1/max_batch of a full-batch iteration; a GPU's throughput is 1 / (mix-weighted cost), the
city's the sum over GPUs. The mix is the declared rates' shares; per-prompt sizes come from a
sample workload of the scenario itself (seed `SAMPLE_SEED`, `SAMPLE_S` simulated seconds), so
text shapes and traces count. Scaling the rates leaves the shares as they are but draws another
sample, so a scaled scenario's estimate lands within about 1% of its target, not exactly.
"""

from __future__ import annotations

import numpy as np

from edgeagents.core.profiles import service_model
from edgeagents.core.scenario import Scenario
from edgeagents.sim.bounds import prompt_work
from edgeagents.sim.workload import generate_workload

SAMPLE_SEED = 0
SAMPLE_S = 600.0


def demand_rate(scenario: Scenario) -> float:
    """Prompts/s the scenario declares, over all demands."""
    return sum(d.arrivals.rate_per_s for d in scenario.workload.demands)


def capacity_per_s(scenario: Scenario) -> float:
    """Estimated prompts/s the whole city can serve at full batches, for its prompt mix."""
    w = generate_workload(scenario, duration_s=SAMPLE_S, seed=SAMPLE_SEED)
    rates = np.zeros(len(scenario.models))
    for d in scenario.workload.demands:
        rates[scenario.model_names.index(d.model)] += d.arrivals.rate_per_s
    share = rates / max(rates.sum(), 1e-12)
    catalogue = scenario.gpu_catalogue
    types = sorted({slot.type for s in scenario.sites for slot in s.gpus})
    cost = {t: np.full(len(scenario.models), np.inf) for t in types}
    index = {m.name: mi for mi, m in enumerate(scenario.models)}
    for m, _, setup, iters in prompt_work(scenario, w):
        mi = index[m.name]
        for t in types:
            gpu = catalogue[t]
            if gpu.memory_gb < m.memory_gb(1):
                continue
            svc = service_model(m, gpu, scenario.engine)
            per_iter = svc.iter_s(m.max_batch) / m.max_batch
            cost[t][mi] = float(np.mean(setup * svc.compute_ratio + iters * per_iter))
    total = 0.0
    for site in scenario.sites:
        for slot in site.gpus:
            c = cost[slot.type]
            fits = np.isfinite(c) & (share > 0)
            if fits.any():
                total += slot.count * share[fits].sum() / float(np.dot(share[fits], c[fits]))
    return total


def utilisation(scenario: Scenario) -> float:
    """Declared demand over estimated capacity."""
    cap = capacity_per_s(scenario)
    return demand_rate(scenario) / cap if cap > 0 else float("inf")


def scale_demand(scenario: Scenario, factor: float) -> Scenario:
    """Every demand's rate times `factor` (trace demands are time-scaled by their rate)."""
    demands = [
        d.model_copy(update={"arrivals": d.arrivals.model_copy(
            update={"rate_per_s": float(d.arrivals.rate_per_s * factor)})})
        for d in scenario.workload.demands
    ]  # fmt: skip
    workload = scenario.workload.model_copy(update={"demands": demands})
    return scenario.model_copy(update={"workload": workload})


def at_load(scenario: Scenario, target: float) -> tuple[Scenario, float, float]:
    """The scenario with its demand scaled to `target` utilisation; the factor applied and
    the utilisation it had before. A factor within 1e-9 of 1 leaves the scenario as it is."""
    before = utilisation(scenario)
    factor = target / before
    if abs(factor - 1.0) <= 1e-9:
        return scenario, 1.0, before
    return scale_demand(scenario, factor), factor, before
