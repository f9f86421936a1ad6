"""`edgeagents run`: the agents beside the baselines on one workload and seed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgeagents.cli.common import (
    MEMORY_DEFAULT,
    ScenarioOpt,
    check_plots,
    check_writable,
    console,
    fail,
    notices_file,
    number_cell,
    policies_or_fail,
    print_table,
    progress_bar,
    scenario_or_fail,
    workload_or_fail,
    write_json,
)
from edgeagents.cli.memory import memory_store


def run(
    scenario: ScenarioOpt = "bristol",
    llm: Annotated[
        str | None,
        typer.Option(help="LM of every agent: local, local:PATH.gguf, openai:MODEL or none."),
    ] = None,
    planner_llm: Annotated[
        str | None, typer.Option(help="Overrides --llm for the planner.")
    ] = None,
    scheduler_llm: Annotated[
        str | None, typer.Option(help="Overrides --llm for the scheduler.")
    ] = None,
    deployer_llm: Annotated[
        str | None, typer.Option(help="Overrides --llm for the deployers.")
    ] = None,
    lm_config: Annotated[
        Path | None, typer.Option(help="YAML with an LMConfig per agent (planner, scheduler, ...).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=1.0, help="Arrival horizon in simulated s.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of workload and routing.")] = 0,
    trace: Annotated[Path | None, typer.Option(help="CSV trace for the text-LLM share.")] = None,
    baselines: Annotated[
        str | None, typer.Option(help="Comma-separated baselines (default: all).")
    ] = None,
    with_none: Annotated[
        bool, typer.Option(help="Also run the agents without their LM (agents-none).")
    ] = True,
    charge_decision_time: Annotated[
        bool, typer.Option(help="A decision takes effect after the wall time it took.")
    ] = True,
    decision_s: Annotated[
        float | None,
        typer.Option(
            "--decision-s",
            min=0.0,
            help="Instead, every decision takes effect this many seconds after its tick, "
            "whatever the machine's load (reproducible; LM calls and the plan search are then "
            "not cut at their wall limits).",
        ),
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write PNG plots into this folder.")] = None,
    log: Annotated[
        Path | None,
        typer.Option(
            help="Rationale log of every agent decision (JSON lines); default beside --json "
            "as NAME.decisions.jsonl."
        ),
    ] = None,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory/--no-memory",
            help="Experience memory: the agents store each epoch's outcome in --memory-path "
            "and recall similar past situations (agents-none shares the store).",
        ),
    ] = False,
    memory_path: Annotated[
        str, typer.Option(help="Experience store directory (env EDGEAGENTS_MEMORY_DIR).")
    ] = MEMORY_DEFAULT,
    notices: Annotated[
        Path | None,
        typer.Option(
            help="Operator notices, JSON lines ({text, publish_s, author}), delivered to the "
            "agents at their publish times, beside the scenario's own."
        ),
    ] = None,
) -> None:
    """Run the LLM agents on the city beside the baselines, on the same workload and seed."""
    from edgeagents.agents.llm import LMConfigError, check_reachable
    from edgeagents.agents.lmconfig import AGENTS, resolve_lm_config

    if decision_s is not None and not charge_decision_time:
        fail("--decision-s and --no-charge-decision-time: give one of them")
    sc = scenario_or_fail(scenario)
    if notices is not None:
        sc = sc.model_copy(update={"notices": [*sc.notices, *notices_file(notices)]})
    names = policies_or_fail(baselines)
    if log is None and json_path is not None:
        log = json_path.with_name(f"{json_path.stem}.decisions.jsonl")
    for path, what in ((json_path, "--json"), (log, "--log")):
        check_writable(path, what)
    check_plots(plots)
    try:
        lm = resolve_lm_config(
            llm=llm,
            per_agent={"planner": planner_llm, "scheduler": scheduler_llm,
                       "deployer": deployer_llm},
            config_path=lm_config,
        )  # fmt: skip
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
    horizon, workload = workload_or_fail(sc, duration, seed, trace)
    store = memory_store(memory_path) if memory else None
    if store is not None:
        console.print(f"experience memory: {store.path} ({store.count()} stored)", highlight=False)

    from edgeagents.experiments.run import run_agents, write_decision_log

    uses_lm = any(getattr(lm, a).spec != "none" for a in AGENTS)
    labels = [*names, "agents"] + (["agents-none"] if with_none and uses_lm else [])
    with progress_bar() as progress:
        tasks = {n: progress.add_task(n, total=horizon) for n in labels}
        report, runs = run_agents(
            sc, lm, baselines=names, duration_s=horizon, seed=seed, workload=workload,
            with_none=with_none,
            charge_decision_time=charge_decision_time if decision_s is None else decision_s,
            on_progress=lambda n, t: progress.update(tasks[n], completed=t), memory=store,
        )  # fmt: skip
    print_table(report)
    print_windows(report)
    print_costs(report)
    if store is not None:
        console.print(f"experience memory: {store.count()} stored in {store.path}", highlight=False)
    if json_path is not None:
        write_json(json_path, report.model_dump(mode="json"))
        console.print(f"wrote {json_path}")
    if log is not None:
        n = write_decision_log(runs, log)
        console.print(f"wrote {log} ({n} decisions)")
    if plots is not None:
        from edgeagents.experiments.plots import write_plots

        for p in write_plots(report, runs, plots):
            console.print(f"wrote {p}")


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
