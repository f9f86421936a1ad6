"""How much of the twin's prediction after a site failure is its refusal penalty.

The what-if twin scores a plan by the mean latency of its prompts, charging each prompt it
cannot serve its horizon; the adaptation benchmark's latency counts served prompts only. This
runs the bench's site-failure city with its starting placement held (greedy router, no agents)
and, at each planning epoch around the failure, prints the twin's prediction for holding, the
same twin run's served-only mean, and what the city really served and refused.

    .venv/bin/python bench/twin_after_failure.py [--seed N] [--horizon-s S]

The twin looks `--horizon-s` ahead: 120 s is the planner's default, 30 s one planning epoch of
the benchmark.
"""

from __future__ import annotations

import argparse
import inspect

import numpy as np

from edgeagents.agents.planner import create_planner
from edgeagents.agents.twin import WhatIf, forecast_demand
from edgeagents.core.scenario import load_scenario
from edgeagents.experiments.adaptation import AdaptationSettings, shift_scenario
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.workload import generate_workload
from graphs.memory_nodes import window_outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    planner_horizon = inspect.signature(create_planner).parameters["horizon_s"].default
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon-s", type=float, default=planner_horizon)
    args = parser.parse_args()
    seed, horizon = args.seed, args.horizon_s
    settings = AdaptationSettings()
    scenario = shift_scenario(load_scenario("bristol"), "site-failure", settings)
    workload = generate_workload(scenario, duration_s=scenario.duration_s, seed=seed)
    city = SimulatedCity(scenario, workload, ROUTERS.create("greedy"))
    epoch = settings.planning_epoch_s
    forecast = None
    print(
        f"site failure at {settings.shift_at_s:g} s; starting placement held; seed {seed}; "
        f"twin horizon {horizon:g} s"
    )
    print(
        "time s | twin: predicted s, served-only s, refused (site_failed) "
        "| city window: served mean s, refused"
    )
    t = epoch
    while t <= settings.shift_at_s + 4 * epoch:
        city.advance(t)
        telemetry = city.observe()
        forecast = forecast_demand(telemetry, forecast)
        whatif = WhatIf(scenario, forecast, telemetry, horizon_s=horizon, seed=seed)
        current = [r.deployment for r in telemetry.replicas]
        out = whatif.simulate(current)
        predicted = whatif.predict(out)
        site_failed = out.refused_by_reason().get("site_failed", 0)
        served_s, _, refused = window_outcome(telemetry)
        if t >= settings.shift_at_s - epoch:
            print(
                f"{t:6.0f} | {predicted.mean_latency_s:6.1f} {np.nanmean(out.latency_s):6.1f} "
                f"{predicted.refused:4d}/{predicted.prompts:<4d} ({site_failed:4d}) | "
                f"{served_s or 0.0:6.1f} {refused:4d}"
            )
        t += epoch


if __name__ == "__main__":
    main()
