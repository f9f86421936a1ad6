"""The planner's search: candidate placement moves for the most slowed-down models, each
ranked by the twin, and a greedy local search over them within a wall-time budget."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from edgeagents.agents.tools import (
    Layout,
    PlanCandidate,
    describe_moves,
    speed_at,
    typical_standalone_s,
)
from edgeagents.agents.twin import Prediction, WhatIf
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import Deployment, DeploymentAction, Telemetry

PLAN_PROMPT_BUDGET = 300_000
"""Prompts the planner's twin may simulate in one epoch, over every region and candidate:
the epoch decision's cost stays bounded however large the city (docs/decisions.md)."""


def placement_moves(
    telemetry: Telemetry,
    scenario: Scenario,
    base: Prediction,
    references: dict[str, float],
    prefix: Sequence[DeploymentAction] = (),
    *,
    per_kind: int = 3,
) -> list[list[DeploymentAction]]:
    """Candidate next moves after `prefix`: loads and swaps for the most slowed-down models,
    every empty GPU filled at once (`fill_empty_gpus`), unloads of idle replicas. Pruned to
    a handful so the twin can rank them."""
    layout = Layout(telemetry, scenario)
    for a in prefix:
        layout.apply(a)
    slowdown = {
        m: base.per_model_mean_s.get(m, 0.0) / references[m]
        for m in scenario.model_names
        if m in references and references[m] > 0
    }
    needy = sorted(slowdown, key=lambda m: -slowdown[m])[:2]
    for m in scenario.model_names:
        if layout.count(m) == 0 and m not in needy and base.per_model_mean_s.get(m) is None:
            needy.insert(0, m)
    moves: list[list[DeploymentAction]] = []
    for name in needy:
        spec = scenario.model(name)
        room = [k for k in layout.gpus if layout.fits(spec, k)]
        room.sort(key=lambda k: -speed_at(layout, spec, k))
        for key in room[:per_kind]:
            moves.append([DeploymentAction(site=key[0], model=name, op="load", gpu_index=key[1])])
        swaps = []
        for d in layout.replicas:
            if d.model == name or layout.count(d.model) < 2 or d.site not in layout.up:
                continue
            if layout.at_limit(name, d.site):
                continue
            key = (d.site, d.gpu_index)
            if layout.free[key] + d.memory_gb < spec.memory_gb(1):
                continue
            gain = 1.0 / typical_standalone_s(scenario, spec, layout.gpus[key])
            # a model the twin served nothing of has no slowdown to go by: neutral, as unknown
            swaps.append((gain * (1 + 1 / (slowdown.get(d.model) or 1.0)), d))
        swaps.sort(key=lambda x: -x[0])
        for _, d in swaps[:per_kind]:
            moves.append(
                [
                    DeploymentAction(
                        site=d.site, model=d.model, op="unload", gpu_index=d.gpu_index
                    ),
                    DeploymentAction(site=d.site, model=name, op="load", gpu_index=d.gpu_index),
                ]
            )
    busy = {r.deployment.replica_id: r.busy_share for r in telemetry.replicas}
    idle = [
        d
        for d in layout.replicas
        if busy.get(d.replica_id, 1.0) < 0.05 and layout.count(d.model) >= 2
    ]
    fill = fill_empty_gpus(layout, scenario, telemetry)  # the layout's last use: it loads
    if len(fill) >= 2:
        moves.append(fill)
    for d in idle[:2]:
        moves.append(
            [DeploymentAction(site=d.site, model=d.model, op="unload", gpu_index=d.gpu_index)]
        )
    return [list(prefix) + m for m in moves]


def fill_empty_gpus(
    layout: Layout, scenario: Scenario, telemetry: Telemetry
) -> list[DeploymentAction]:
    """One load on every live GPU that holds nothing (a site back from an outage, a GPU never
    used): each the model furthest below its share of the city's work (window arrivals x
    stand-alone time / batch limit) counting the replicas it has, not yet at that site. One
    candidate, since loads one step at a time refill an empty site over several epochs."""
    empty = sorted(k for k in layout.gpus if k[0] in layout.up and layout.tenants(k) == 0)
    rates, _ = telemetry.window_demand()
    if not empty or not any(r > 0 for r in rates.values()):
        return []
    work = {
        m.name: rates.get(m.name, 0.0)
        * typical_standalone_s(scenario, m, layout.gpus[empty[0]])
        / m.max_batch
        for m in scenario.models
    }
    total = sum(work.values())
    counts = Counter(d.model for d in layout.replicas)
    loads: list[DeploymentAction] = []
    for key in empty:
        here = {d.model for d in layout.replicas if d.site == key[0]}
        n = len(layout.replicas) + 1
        fits = [m for m in scenario.models if m.name not in here and layout.fits(m, key)]
        if not fits:
            continue
        pick = max(fits, key=lambda m: work[m.name] / total * n - counts[m.name])
        a = DeploymentAction(site=key[0], model=pick.name, op="load", gpu_index=key[1])
        if layout.apply(a):
            counts[pick.name] += 1
            loads.append(a)
    return loads


def placement_actions(
    target: dict[str, list[str]], telemetry: Telemetry, scenario: Scenario
) -> list[DeploymentAction]:
    """The moves from the running placement to `target` (site -> models, one entry per
    replica): unloads first, then loads where they fit. Sites down now, unknown sites and
    models, and loads that do not fit are skipped."""
    layout = Layout(telemetry, scenario)
    models = set(scenario.model_names)
    unloads: list[DeploymentAction] = []
    loads: list[DeploymentAction] = []
    for site in sorted(layout.up & set(target)):
        have = Counter(d.model for d in layout.replicas if d.site == site)
        want = Counter(m for m in target[site] if m in models)
        for m in sorted(have - want):
            for _ in range((have - want)[m]):
                d = next(d for d in layout.replicas if (d.site, d.model) == (site, m))
                a = DeploymentAction(site=site, model=m, op="unload", gpu_index=d.gpu_index)
                layout.apply(a)
                unloads.append(a)
        for m in sorted(want - have):
            spec = scenario.model(m)
            for _ in range((want - have)[m]):
                room = [k for k in layout.gpus if k[0] == site and layout.fits(spec, k)]
                if not room:
                    break
                key = max(room, key=lambda k: layout.free[k])
                a = DeploymentAction(site=site, model=m, op="load", gpu_index=key[1])
                layout.apply(a)
                loads.append(a)
    return unloads + loads


def models_reduced(actions: Sequence[DeploymentAction]) -> frozenset[str]:
    """Models with fewer replicas after `actions` than before."""
    net: Counter[str] = Counter()
    for a in actions:
        net[a.model] += {"load": 1, "unload": -1}.get(a.op, 0)
    return frozenset(m for m, k in net.items() if k < 0)


def robust(
    whatif: WhatIf,
    current: Sequence[Deployment],
    candidate: PlanCandidate,
    pessimists: dict[frozenset[str], tuple[WhatIf, float]],
    prompt_budget: int = PLAN_PROMPT_BUDGET,
) -> bool:
    """Whether `candidate` still beats holding still on the twin with the models it takes
    replicas from as busy as their windows allow (`WhatIf.pessimistic`; one twin per set of
    models, cached in `pessimists` with its hold score). A plan that adds only passes; one
    that takes when the budget has no room left to check it fails. The check's prompts
    count on `whatif`'s budget."""
    reduced = models_reduced(candidate.actions)
    if not reduced:
        return True
    if reduced not in pessimists:
        twin = whatif.pessimistic(reduced)
        if over_budget(whatif, prompt_budget, 2 * len(twin.workload)):
            return False
        pessimists[reduced] = (twin, twin.evaluate(current).score())
        whatif.simulated += len(twin.workload)
    twin, held = pessimists[reduced]
    if over_budget(whatif, prompt_budget, len(twin.workload)):
        return False
    whatif.simulated += len(twin.workload)
    return twin.evaluate(current, candidate.actions).score() < held


def over_budget(whatif: WhatIf, prompt_budget: int, prompts: int | None = None) -> bool:
    """Whether `prompts` more (default: one more evaluation of `whatif`) would take its
    simulated prompts past `prompt_budget`."""
    more = len(whatif.workload) if prompts is None else prompts
    return whatif.simulated + more > prompt_budget


def search_plans(
    whatif: WhatIf,
    telemetry: Telemetry,
    scenario: Scenario,
    *,
    steps: int = 3,
    budget_s: float = 6.0,
    robust_tries: int = 3,
    min_gain: float = 0.01,
    remembered: dict[str, list[str]] | None = None,
    prompt_budget: int = PLAN_PROMPT_BUDGET,
) -> list[PlanCandidate]:
    """Greedy local search over placement moves, each ranked by the twin. Returns a menu,
    best first: the best plan found, the best single-step plan, holding still, and the moves
    to a `remembered` placement (from the experience memory) when it differs and the twin
    predicts it no worse than holding still (a placement remembered from another situation
    can be far off). A step takes the best of its first `robust_tries` candidates that still
    beats holding still when the models it takes replicas from are as busy as their windows
    allow (`robust`; 0: the best, unchecked). The search stops when the next candidate would
    take the twin past `prompt_budget` simulated prompts, or past `budget_s` of wall time."""
    start = time.perf_counter()
    current = [r.deployment for r in telemetry.replicas]
    hold = whatif.evaluate(current)
    refs = whatif.references
    pessimists: dict[frozenset[str], tuple[WhatIf, float]] = {}
    best = PlanCandidate(name="hold", actions=[], prediction=hold)
    first_step: PlanCandidate | None = None
    for step in range(steps):
        scored: list[PlanCandidate] = []
        for moves in placement_moves(telemetry, scenario, best.prediction, refs, best.actions):
            if time.perf_counter() - start > budget_s or over_budget(whatif, prompt_budget):
                break
            pred = whatif.evaluate(current, moves)
            scored.append(PlanCandidate(name=describe_moves(moves), actions=moves, prediction=pred))
        if not scored:
            break
        ranked = sorted(scored, key=lambda c: c.prediction.score())
        checked = (
            c
            for c in ranked[:robust_tries]
            if robust(whatif, current, c, pessimists, prompt_budget)
        )
        top = next(checked, None) if robust_tries else ranked[0]
        if top is None:
            break
        if step == 0:
            first_step = top
        if top.prediction.score() > best.prediction.score() * (1 - min_gain):
            break
        best = top
    menu = [best]
    if (
        first_step is not None
        and first_step.actions != best.actions
        and (first_step.prediction.score() < hold.score())
    ):
        menu.append(first_step)
    if best.actions:
        menu.append(PlanCandidate(name="hold", actions=[], prediction=hold))
    if remembered:
        moves = placement_actions(remembered, telemetry, scenario)
        if moves and all(moves != c.actions for c in menu):
            pred = whatif.evaluate(current, moves)
            if pred.score() <= hold.score():
                name = f"remembered: {describe_moves(moves)}"
                menu.append(PlanCandidate(name=name, actions=moves, prediction=pred))
    return sorted(menu, key=lambda c: c.prediction.score())
