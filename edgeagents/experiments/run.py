"""The main job: the agents and the baselines on one scenario, workload and seed."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.lmconfig import AGENTS, AgentsLMConfig
from edgeagents.core.env import DecisionCharge
from edgeagents.core.scenario import Scenario
from edgeagents.experiments.bench import BenchReport, compare
from edgeagents.experiments.checkpoint import RunCheckpoint
from edgeagents.experiments.driver import EpisodeRun
from edgeagents.policies import ROUTERS
from edgeagents.sim.workload import Workload

UNBOUNDED_WALL_S = 600.0
"""The plan search's wall budget and each LM call's limit when decisions are charged a fixed
time: far above what they take, so that CPU load cannot cut them short and an episode depends
on what the agents answer, not on how fast they answered."""


def wall_limits(
    lm_config: AgentsLMConfig, charge: DecisionCharge
) -> tuple[AgentsLMConfig, float | None]:
    """The LM config and the planner's plan-search budget (None: its default) for a decision
    charge: a fixed charge (a number) lifts both to `UNBOUNDED_WALL_S`; True or False keeps
    the agents' own wall limits."""
    if isinstance(charge, bool):
        return lm_config, None
    unbounded = {
        a: getattr(lm_config, a).model_copy(update={"timeout_s": UNBOUNDED_WALL_S}) for a in AGENTS
    }
    return lm_config.model_copy(update=unbounded), UNBOUNDED_WALL_S


class AgentCost(BaseModel):
    """What deciding cost one agent over an episode."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    llm: str
    decisions: int
    lm_calls: int
    tokens: int
    mean_wall_s: float = Field(description="Mean wall time of one decision, tools included.")
    max_wall_s: float
    paths: dict[str, float] = Field(description="Share of decisions per path.")


def agent_costs(run: EpisodeRun, specs: dict[str, str]) -> list[AgentCost]:
    by_agent: dict[str, list] = defaultdict(list)
    for d in run.decisions:
        for rec in d.records:
            by_agent[rec.agent.split(":")[0]].append(rec)
    out = []
    specs = {**specs, "notices": specs.get("planner", "none")}
    for agent in (*AGENTS, "notices"):
        recs = by_agent.get(agent, [])
        if not recs:
            continue
        paths = Counter(r.path for r in recs)
        out.append(
            AgentCost(
                agent=agent,
                llm=specs.get(agent, "none"),
                decisions=len(recs),
                lm_calls=sum(r.lm_calls for r in recs),
                tokens=sum(r.tokens for r in recs),
                mean_wall_s=sum(r.wall_s for r in recs) / len(recs),
                max_wall_s=max(r.wall_s for r in recs),
                paths={p: n / len(recs) for p, n in sorted(paths.items())},
            )
        )
    return out


class WindowFigures(BaseModel):
    """One policy's prompts arriving inside the scenario's announced event windows."""

    model_config = ConfigDict(extra="forbid")

    prompts: int
    served: int
    refused: int
    mean_latency_s: float | None
    per_window_mean_s: list[float | None]


def window_figures(
    runs: dict[str, EpisodeRun], workload: Workload, windows: Sequence[tuple[float, float]]
) -> dict[str, WindowFigures]:
    """Per policy: the figures of prompts that arrived inside any window, and per window."""
    import numpy as np

    arrival = workload.arrival_s
    out = {}
    for name, run in runs.items():
        lat = run.outcomes.latency_s
        served = ~np.isnan(lat)

        def mean(
            mask: np.ndarray, lat: np.ndarray = lat, served: np.ndarray = served
        ) -> float | None:
            sel = mask & served
            return float(lat[sel].mean()) if sel.any() else None

        inside = np.zeros(len(arrival), dtype=bool)
        per = []
        for a, b in windows:
            m = (arrival >= a) & (arrival < b)
            inside |= m
            per.append(mean(m))
        out[name] = WindowFigures(
            prompts=int(inside.sum()), served=int((inside & served).sum()),
            refused=int((inside & ~served).sum()), mean_latency_s=mean(inside),
            per_window_mean_s=per,
        )  # fmt: skip
    return out


class RunReport(BenchReport):
    """What `edgeagents run` writes: the bench report, plus what deciding cost."""

    llm: dict[str, str]
    event_windows: list[tuple[float, float]] = Field(
        default_factory=list,
        description="The windows the scenario's notices announce (their `expect`), sim s.",
    )
    in_windows: dict[str, WindowFigures] = Field(
        default_factory=dict, description="Policy -> prompts arriving inside those windows."
    )
    costs: dict[str, list[AgentCost]] = Field(description="Policy name -> cost per agent.")
    charge_decision_time: DecisionCharge = Field(
        description="True: each decision applied after its wall time; a number: after that "
        "many seconds (LM calls and plan search then unbounded); False: at once."
    )


def agents_policy(
    lm_config: AgentsLMConfig,
    models: dict[str, Any],
    *,
    memory: Any = None,
    thread_id: str | None = None,
    search_budget_s: float | None = None,
    checkpointer: Any = None,
) -> tuple[Any, Any]:
    """The agents as a (router, controller) pair for the driver: the weighted router applies
    the scheduler's policy; `models` holds each agent's chat model (None: no LM);
    `search_budget_s` replaces the planner's wall-time budget for its plan search;
    `checkpointer` keeps the graph's state per cycle in the thread `thread_id`."""
    from graphs.controller import AgentsController

    return ROUTERS.create("weighted"), AgentsController(
        None,
        planner_model=models["planner"],
        scheduler_model=models["scheduler"],
        deployer_model=models["deployer"],
        lm_timeouts_s={a: getattr(lm_config, a).timeout_s for a in AGENTS},
        memory=memory,
        thread_id=thread_id,
        checkpointer=checkpointer,
        planner_kwargs={} if search_budget_s is None else {"search_budget_s": search_budget_s},
    )


def run_agents(
    scenario: Scenario,
    lm_config: AgentsLMConfig,
    *,
    baselines: Sequence[str],
    duration_s: float | None = None,
    seed: int = 0,
    workload: Workload | None = None,
    with_none: bool = True,
    charge_decision_time: DecisionCharge = True,
    on_progress: Callable[[str, float], None] | None = None,
    memory: Any = None,
    checkpoint: RunCheckpoint | None = None,
) -> tuple[RunReport, dict[str, EpisodeRun]]:
    """Baselines, then the agents (named `agents`), then, if the agents use an LM, the same
    agents without it (`agents-none`), all on one workload and seed. `memory` (an
    `ExperienceStore`) is the experience memory of both agents runs. A fixed
    `charge_decision_time` (seconds) also lifts the LM and plan-search wall limits. With a
    `checkpoint`, every episode is written to it, and what it holds is replayed, not rerun."""
    from edgeagents.agents.llm import create_chat_model

    lm_config, search_budget_s = wall_limits(lm_config, charge_decision_time)
    specs = lm_config.specs()
    models = {a: create_chat_model(getattr(lm_config, a)) for a in AGENTS}

    def agents(use_lm: bool) -> tuple[Any, Any]:
        if checkpoint is not None:
            thread, saver = "agents" if use_lm else "agents-none", checkpoint.saver
        else:
            thread = f"agents-{'lm' if use_lm else 'none'}-seed{seed}" if memory else None
            saver = None
        return agents_policy(
            lm_config, models if use_lm else dict.fromkeys(AGENTS), memory=memory,
            thread_id=thread, search_budget_s=search_budget_s, checkpointer=saver,
        )  # fmt: skip

    policies: list[Any] = list(baselines)
    names = list(baselines)
    policies.append(agents(True))
    names.append("agents")
    uses_lm = any(s != "none" for s in specs.values())
    if with_none and uses_lm:
        policies.append(agents(False))
        names.append("agents-none")
    if workload is None:  # made here, as compare would, since the window figures need it too
        from edgeagents.sim.workload import generate_workload

        horizon = scenario.duration_s if duration_s is None else duration_s
        workload = generate_workload(scenario, duration_s=horizon, seed=seed)
    report, runs = compare(
        scenario, policies, names=names, duration_s=duration_s, seed=seed, workload=workload,
        on_progress=on_progress, charge_decision_time=charge_decision_time,
        checkpoint=checkpoint,
    )  # fmt: skip
    costs = {"agents": agent_costs(runs["agents"], specs)}
    if "agents-none" in runs:
        costs["agents-none"] = agent_costs(runs["agents-none"], dict.fromkeys(AGENTS, "none"))
    from edgeagents.core.notice_form import expected_intents

    windows = [
        (i.start_s, i.end_s)
        for i in expected_intents(scenario.notices, scenario)
        if i.start_s is not None and i.end_s is not None
    ]
    run_report = RunReport(
        **report.model_dump(),
        llm=specs,
        costs=costs,
        charge_decision_time=charge_decision_time,
        event_windows=windows,
        in_windows=window_figures(runs, workload, windows) if windows else {},
    )
    return run_report, runs


def write_decision_log(runs: dict[str, EpisodeRun], path: Path) -> int:
    """One JSON line per agent decision of the agents' runs: when, who, path, why, what."""
    n = 0
    with path.open("w") as f:
        for policy, run in runs.items():
            if not policy.startswith("agents"):
                continue
            for decision, report in zip(run.decisions, run.reports, strict=True):
                for rec in decision.records:
                    line = {
                        "policy": policy,
                        "time_s": round(decision.time_s, 3),
                        **rec.model_dump(mode="json"),
                    }
                    if rec.agent == "scheduler" and decision.routing is not None:
                        line["routing"] = decision.routing.model_dump(mode="json")["routes"]
                    if rec.agent.startswith("deployer:"):
                        site = rec.agent.split(":", 1)[1]
                        line["actions"] = [
                            a.model_dump(mode="json", exclude_defaults=True)
                            for a in decision.actions if a.site == site
                        ]  # fmt: skip
                        line["refused"] = [
                            r.reason for r in report.refused if r.action.site == site
                        ]
                    if rec.agent == "planner" and decision.plan is not None:
                        line["plan"] = decision.plan.notes
                        line["plan_source"] = decision.plan.source
                        line["predicted_mean_latency_s"] = decision.plan.predicted_mean_latency_s
                    f.write(json.dumps(line) + "\n")
                    n += 1
    return n
