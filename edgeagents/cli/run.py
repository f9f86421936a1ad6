"""`edgeagents run`: the agents beside the baselines on one workload and seed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from edgeagents.cli.common import (
    MEMORY_DEFAULT,
    DurationOpt,
    JsonOpt,
    PlotsOpt,
    ScenarioOpt,
    SeedOpt,
    check_plots,
    check_writable,
    console,
    fail,
    notices_file,
    number_cell,
    policies_or_fail,
    print_table,
    progress_bar,
    save_plots,
    save_report,
    scenario_or_fail,
    workload_or_fail,
)
from edgeagents.cli.memory import memory_store

if TYPE_CHECKING:
    from edgeagents.agents.lmconfig import AgentsLMConfig
    from edgeagents.core.scenario import Scenario
    from edgeagents.experiments.checkpoint import RunCheckpoint
    from edgeagents.sim.workload import Workload

LlmOpt = Annotated[
    str | None,
    typer.Option(help="LM of every agent: local, local:PATH.gguf, openai:MODEL or none."),
]
PlannerLlmOpt = Annotated[str | None, typer.Option(help="Overrides --llm for the planner.")]
SchedulerLlmOpt = Annotated[str | None, typer.Option(help="Overrides --llm for the scheduler.")]
DeployerLlmOpt = Annotated[str | None, typer.Option(help="Overrides --llm for the deployers.")]
LmConfigOpt = Annotated[
    Path | None, typer.Option(help="YAML with an LMConfig per agent (planner, scheduler, ...).")
]
BaselinesOpt = Annotated[str | None, typer.Option(help="Comma-separated baselines (default: all).")]
WithNoneOpt = Annotated[
    bool, typer.Option(help="Also run the agents without their LM (agents-none).")
]
ChargeOpt = Annotated[
    bool, typer.Option(help="A decision takes effect after the wall time it took.")
]
DecisionSOpt = Annotated[
    float | None,
    typer.Option(
        "--decision-s",
        min=0.0,
        help="Instead, every decision takes effect this many seconds after its tick, "
        "whatever the machine's load (reproducible; LM calls and the plan search are then "
        "not cut at their wall limits).",
    ),
]
DecisionLogOpt = Annotated[
    Path | None,
    typer.Option(
        help="Rationale log of every agent decision (JSON lines); default beside --json "
        "as NAME.decisions.jsonl."
    ),
]
MemoryOpt = Annotated[
    bool,
    typer.Option(
        "--memory/--no-memory",
        help="Experience memory: the agents store each epoch's outcome in --memory-path "
        "and recall similar past situations (agents-none shares the store).",
    ),
]
MemoryPathOpt = Annotated[
    str, typer.Option(help="Experience store directory (env EDGEAGENTS_MEMORY_DIR).")
]
NoticesOpt = Annotated[
    Path | None,
    typer.Option(
        help="Operator notices, JSON lines ({text, publish_s, author}), delivered to the "
        "agents at their publish times, beside the scenario's own."
    ),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        help="Write the run to this SQLite file after every control cycle (the decisions "
        "and the agents' LangGraph state), so that a killed run can --resume; off by default."
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        help="Continue the run that wrote --checkpoint (same options): what it recorded is "
        "replayed without calling any agent or LM, then the run goes on live."
    ),
]


def run(
    scenario: ScenarioOpt = "bristol",
    llm: LlmOpt = None,
    planner_llm: PlannerLlmOpt = None,
    scheduler_llm: SchedulerLlmOpt = None,
    deployer_llm: DeployerLlmOpt = None,
    lm_config: LmConfigOpt = None,
    duration: DurationOpt = None,
    seed: SeedOpt = 0,
    trace: Annotated[Path | None, typer.Option(help="CSV trace for the text-LLM share.")] = None,
    baselines: BaselinesOpt = None,
    with_none: WithNoneOpt = True,
    charge_decision_time: ChargeOpt = True,
    decision_s: DecisionSOpt = None,
    json_path: JsonOpt = None,
    plots: PlotsOpt = None,
    log: DecisionLogOpt = None,
    memory: MemoryOpt = False,
    memory_path: MemoryPathOpt = MEMORY_DEFAULT,
    notices: NoticesOpt = None,
    checkpoint: CheckpointOpt = None,
    resume: ResumeOpt = False,
) -> None:
    """Run the LLM agents on the city beside the baselines, on the same workload and seed."""
    from edgeagents.agents.lmconfig import AGENTS

    if decision_s is not None and not charge_decision_time:
        fail("--decision-s and --no-charge-decision-time: give one of them")
    if resume and checkpoint is None:
        fail("--resume needs --checkpoint PATH: the file the run to continue wrote")
    if checkpoint is not None and memory:
        fail("--checkpoint with --memory: the experience store is not checkpointed, so a "
             "resumed run would not repeat; drop one of them")  # fmt: skip
    sc = scenario_or_fail(scenario)
    if notices is not None:
        sc = sc.model_copy(update={"notices": [*sc.notices, *notices_file(notices)]})
    names = policies_or_fail(baselines)
    if log is None and json_path is not None:
        log = json_path.with_name(f"{json_path.stem}.decisions.jsonl")
    for path, what in ((json_path, "--json"), (log, "--log"), (checkpoint, "--checkpoint")):
        check_writable(path, what)
    check_plots(plots)
    lm = agent_lms_or_fail(
        llm,
        {"planner": planner_llm, "scheduler": scheduler_llm, "deployer": deployer_llm},
        lm_config,
    )
    horizon, workload = workload_or_fail(sc, duration, seed, trace)
    store = memory_store(memory_path) if memory else None
    if store is not None:
        console.print(f"experience memory: {store.path} ({store.count()} stored)", highlight=False)

    from edgeagents.experiments.checkpoint import run_options
    from edgeagents.experiments.run import write_decision_log

    charge = charge_decision_time if decision_s is None else decision_s
    options = run_options(seed=seed, duration_s=horizon, baselines=names, with_none=with_none,
                          charge=charge, lm_config=lm)  # fmt: skip
    cp = checkpoint_or_fail(checkpoint, resume, sc, workload, options)
    uses_lm = any(getattr(lm, a).spec != "none" for a in AGENTS)
    labels = [*names, "agents"] + (["agents-none"] if with_none and uses_lm else [])
    report, runs = agents_with_progress(
        labels, cp, scenario=sc, lm_config=lm, baselines=names, duration_s=horizon, seed=seed,
        workload=workload, with_none=with_none, charge_decision_time=charge, memory=store,
    )  # fmt: skip
    print_table(report)
    print_windows(report)
    print_costs(report)
    if store is not None:
        console.print(f"experience memory: {store.count()} stored in {store.path}", highlight=False)
    save_report(json_path, report)
    if log is not None:
        n = write_decision_log(runs, log)
        console.print(f"wrote {log} ({n} decisions)")
    save_plots(plots, report, runs)


def agents_with_progress(
    labels: list[str], checkpoint: RunCheckpoint | None, **kwargs: Any
) -> tuple[Any, Any]:
    """`run_agents` under a progress bar per episode; a checkpoint that stops replaying is
    one line and exit 2 (what it recorded stays)."""
    from edgeagents.experiments.checkpoint import CheckpointError
    from edgeagents.experiments.run import run_agents

    try:
        with progress_bar() as progress:
            tasks = {n: progress.add_task(n, total=kwargs["duration_s"]) for n in labels}
            return run_agents(
                kwargs.pop("scenario"), kwargs.pop("lm_config"), checkpoint=checkpoint,
                on_progress=lambda n, t: progress.update(tasks[n], completed=t), **kwargs,
            )  # fmt: skip
    except CheckpointError as e:
        fail(str(e))
    finally:
        if checkpoint is not None:
            checkpoint.close()


def checkpoint_or_fail(
    path: Path | None, resume: bool, scenario: Scenario, workload: Workload,
    options: dict[str, Any],
) -> RunCheckpoint | None:  # fmt: skip
    """The run's checkpoint, new or (with --resume) opened with the same fingerprint; one
    line and exit 2 if it exists unasked, is missing, unreadable or from another run."""
    if path is None:
        return None
    from edgeagents.experiments.checkpoint import CheckpointError, RunCheckpoint, fingerprint

    try:
        cp = RunCheckpoint(path, fingerprint(scenario, workload, options=options), resume=resume)
    except CheckpointError as e:
        fail(str(e))
    if resume:
        episodes = cp.episodes()
        done = sum(1 for _, finished, _ in episodes if finished)
        said = ", ".join(f"{name} {'done' if fin else f'{k} cycles'}" for name, fin, k in
                         episodes) or "nothing recorded"  # fmt: skip
        console.print(f"resuming {path}: {said} ({done} episodes done)", highlight=False)
    return cp


def agent_lms_or_fail(
    llm: str | None, per_agent: dict[str, str | None], config_path: Path | None
) -> AgentsLMConfig:
    """Every agent's LM config, each distinct LM checked to answer once, before any episode;
    a bad spec, an LM that does not answer or a missing extra is one line and exit 2."""
    from edgeagents.agents.llm import LMConfigError, check_reachable
    from edgeagents.agents.lmconfig import AGENTS, resolve_lm_config

    try:
        lm = resolve_lm_config(llm=llm, per_agent=per_agent, config_path=config_path)
        checked: set[str] = set()
        for agent in AGENTS:
            cfg = getattr(lm, agent)
            if cfg.spec not in checked:
                check_reachable(cfg)
                checked.add(cfg.spec)
    except LMConfigError as e:
        fail(str(e))
    except ImportError as e:
        fail(f"the agents need their extra: pip install 'edgeagents[agents]' ({e.name} missing)")
    return lm


def print_windows(report) -> None:
    """Mean latency of the prompts that arrived inside the announced event windows."""
    if not report.in_windows:
        return
    spans = ", ".join(f"{a:g}-{b:g} s" for a, b in report.event_windows)
    t = Table(title=f"Inside the announced event windows ({spans})")
    for col in ("policy", "prompts", "refused", "mean s", *(f"{a:g}-{b:g}" for a, b in
                report.event_windows)):  # fmt: skip
        t.add_column(col, justify="left" if col == "policy" else "right")
    for policy, w in report.in_windows.items():
        t.add_row(policy, str(w.prompts), str(w.refused), number_cell(w.mean_latency_s),
                  *(number_cell(x) for x in w.per_window_mean_s))  # fmt: skip
    console.print(t)


def print_costs(report) -> None:
    """Cost of deciding: LM calls, tokens, wall time, and which path decided."""
    t = Table(title="Cost of deciding (wall time per decision includes the tools)")
    for col in ("policy", "agent", "LM", "decisions", "LM calls", "tokens", "mean s", "max s",
                "lm", "repaired", "fallback", "tools"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("policy", "agent", "LM") else "right")
    for policy, costs in report.costs.items():
        for c in costs:
            t.add_row(
                policy, c.agent, c.llm, str(c.decisions), str(c.lm_calls), str(c.tokens),
                f"{c.mean_wall_s:.2f}", f"{c.max_wall_s:.2f}",
                *(f"{c.paths.get(p, 0.0):.0%}" for p in ("lm", "repaired", "fallback", "tools")),
            )  # fmt: skip
    console.print(t)
