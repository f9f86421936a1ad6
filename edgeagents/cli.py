"""The `edgeagents` command line (typer + rich)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgeagents.scenario import BUILTIN_SCENARIOS, Scenario, ScenarioError, load_scenario

if TYPE_CHECKING:
    from edgeagents.workload import Workload

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Latency- and fairness-aware multi-modal inference across a city of edge GPU servers.",
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks on the simulated city.", pretty_exceptions_enable=False)
scenario_app = typer.Typer(help="Inspect and validate scenarios.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(scenario_app, name="scenario")
memory_app = typer.Typer(
    help="Inspect and move the experience memory (Chroma).", no_args_is_help=True
)
app.add_typer(memory_app, name="memory")
notices_app = typer.Typer(
    help="Operator notices: read them as the agents do.", no_args_is_help=True
)
app.add_typer(notices_app, name="notices")

console = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True)

ScenarioOpt = Annotated[
    str,
    typer.Option(
        "--scenario",
        "-s",
        help=f"Built-in name ({', '.join(BUILTIN_SCENARIOS)}) or a YAML file.",
    ),
]


MEMORY_DEFAULT = os.environ.get("EDGEAGENTS_MEMORY_DIR") or "~/.cache/edgeagents/memory"
"""Same as `memory.store.default_memory_dir()`, without importing `memory` at import time."""


def fail(message: str) -> NoReturn:
    """One clear line on stderr, exit code 2, nothing written."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _scenario(name: str) -> Scenario:
    try:
        return load_scenario(name)
    except ScenarioError as e:
        fail(str(e))


def _check_writable(path: Path | None, what: str) -> None:
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and path.is_dir():
        fail(f"{what} {path}: is a directory, expected a file path")
    if not parent.is_dir():
        fail(f"{what} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        fail(f"{what} {path}: directory {parent} is not writable")


def _policies(text: str | None) -> list[str]:
    from edgeagents.bench import resolve_policies

    try:
        return resolve_policies(text)
    except KeyError as e:
        fail(str(e.args[0]))


def _make_folder(path: Path | None, what: str) -> None:
    """Create the folder an option names, or fail in one line."""
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"{what} {path}: cannot create the folder ({e.strerror or e})")
    if not os.access(path, os.W_OK):
        fail(f"{what} {path}: the folder is not writable")


def _check_plots(plots: Path | None) -> None:
    if plots is not None and plots.exists() and not plots.is_dir():
        fail(f"--plots {plots}: exists and is not a directory")


def _workload(
    sc: Scenario, duration: float | None, seed: int, trace: Path | None
) -> tuple[float, Workload]:
    """The episode's arrival horizon and prompts; a bad trace is one line and exit 2."""
    from edgeagents.workload import generate_workload, load_trace

    horizon = sc.duration_s if duration is None else duration
    try:
        if trace is not None:
            load_trace(trace)
        return horizon, generate_workload(sc, duration_s=horizon, seed=seed, trace_path=trace)
    except ScenarioError as e:
        fail(str(e))


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


@bench_app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    scenario: ScenarioOpt = "bristol",
    policies: Annotated[
        str | None, typer.Option(help="Comma-separated policies (default: every baseline).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=1.0, help="Arrival horizon in simulated s.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of workload and routing.")] = 0,
    trace: Annotated[
        Path | None, typer.Option(help="CSV trace for the text-LLM share (TIMESTAMP,...).")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write PNG plots into this folder.")] = None,
) -> None:
    """Run every policy on the same scenario, workload and seed; print and save the figures."""
    if ctx.invoked_subcommand is not None:
        return
    from edgeagents.bench import compare

    sc = _scenario(scenario)
    names = _policies(policies)
    _check_writable(json_path, "--json")
    _check_plots(plots)
    horizon, workload = _workload(sc, duration, seed, trace)

    with _progress() as progress:
        tasks = {n: progress.add_task(n, total=horizon) for n in names}
        report, runs = compare(
            sc,
            names,
            duration_s=horizon,
            seed=seed,
            workload=workload,
            on_progress=lambda n, t: progress.update(tasks[n], completed=t),
        )
    print_table(report)
    if json_path is not None:
        _write_json(json_path, report.model_dump(mode="json"))
        console.print(f"wrote {json_path}")
    if plots is not None:
        from edgeagents.plots import write_plots

        for p in write_plots(report, runs, plots):
            console.print(f"wrote {p}")


def _progress(unit: str = "sim s") -> Progress:
    return Progress(
        TextColumn("{task.description:>18}"),
        BarColumn(),
        TextColumn(f"{{task.completed:>6.0f}}/{{task.total:.0f}} {unit}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def print_table(report) -> None:
    """The comparison table: one row per policy, the lower bound last."""
    t = Table(
        title=f"{report.scenario} ({report.engine}), seed {report.seed}, "
        f"{report.duration_s:.0f} s, {report.prompts} prompts",
        caption="Jain = normalized Jain index over model types of ref_k/mean_k; "
        "rescaled = (J-1/K)/(1-1/K). ×RR: mean / round-robin's. ×LB: mean / zero-queue bound. "
        f"Simulator: {report.sim_prompts_per_s:,.0f} prompts/s.",
    )
    for col in ("policy", "mean s", "p50 s", "p95 s", "p99 s", "SLO", "Jain", "Jain resc.",
                "served", "refused", "×RR", "×LB"):  # fmt: skip
        t.add_column(col, justify="left" if col == "policy" else "right")
    for r in report.results:
        t.add_row(
            r.policy,
            _f(r.mean_latency_s),
            _f(r.p50_latency_s),
            _f(r.p95_latency_s),
            _f(r.p99_latency_s),
            f"{r.slo_attainment:.0%}",
            _f(r.jain, "{:.3f}"),
            _f(r.jain_rescaled, "{:.3f}"),
            str(r.served),
            str(r.refused),
            _f(r.ratio_to_round_robin),
            _f(r.lower_bound_ratio),
        )
    console.print(t)


@app.command("run")
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
    from edgeagents.llm import LMConfigError, check_reachable
    from edgeagents.lmconfig import AGENTS, resolve_lm_config

    if decision_s is not None and not charge_decision_time:
        fail("--decision-s and --no-charge-decision-time: give one of them")
    sc = _scenario(scenario)
    if notices is not None:
        sc = sc.model_copy(update={"notices": [*sc.notices, *_notices_file(notices)]})
    names = _policies(baselines)
    if log is None and json_path is not None:
        log = json_path.with_name(f"{json_path.stem}.decisions.jsonl")
    for path, what in ((json_path, "--json"), (log, "--log")):
        _check_writable(path, what)
    _check_plots(plots)
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
    horizon, workload = _workload(sc, duration, seed, trace)
    store = _memory_store(memory_path) if memory else None
    if store is not None:
        console.print(f"experience memory: {store.path} ({store.count()} stored)", highlight=False)

    from edgeagents.experiment import run_agents, write_decision_log

    uses_lm = any(getattr(lm, a).spec != "none" for a in AGENTS)
    labels = [*names, "agents"] + (["agents-none"] if with_none and uses_lm else [])
    with _progress() as progress:
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
        _write_json(json_path, report.model_dump(mode="json"))
        console.print(f"wrote {json_path}")
    if log is not None:
        n = write_decision_log(runs, log)
        console.print(f"wrote {log} ({n} decisions)")
    if plots is not None:
        from edgeagents.plots import write_plots

        for p in write_plots(report, runs, plots):
            console.print(f"wrote {p}")


def _notices_file(path: Path) -> list:
    from edgeagents.notices import NoticeError, load_notices

    try:
        return load_notices(str(path))
    except NoticeError as e:
        fail(str(e))


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
        t.add_row(policy, str(w.prompts), str(w.refused), _f(w.mean_latency_s),
                  *(_f(x) for x in w.per_window_mean_s))  # fmt: skip
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


@bench_app.command("scaling")
def bench_scaling(
    scenario: ScenarioOpt = "bristol",
    sizes: Annotated[str, typer.Option(help="Comma-separated durations, s.")] = "300,900,2700",
    policy: Annotated[str, typer.Option(help="Policy simulated.")] = "least-loaded",
    seed: int = 0,
    json_path: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Simulator speed at three workload sizes: prompts per wall second, µs per prompt."""
    from edgeagents.bench import scaling

    sc = _scenario(scenario)
    try:
        durations = [float(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        fail(f"--sizes {sizes!r}: expected comma-separated numbers of seconds")
    if not durations or min(durations) <= 0:
        fail("--sizes: give at least one positive duration")
    _policies(policy)
    _check_writable(json_path, "--json")
    points = scaling(sc, durations, policy=policy, seed=seed)
    t = Table(title=f"Simulator cost vs size ({policy}, one core)")
    for col in ("duration s", "prompts", "wall s", "prompts/s", "µs/prompt"):
        t.add_column(col, justify="right")
    for p in points:
        t.add_row(f"{p.duration_s:.0f}", str(p.prompts), f"{p.wall_s:.2f}",
                  f"{p.prompts_per_s:,.0f}", f"{p.us_per_prompt:.1f}")  # fmt: skip
    console.print(t)
    if json_path is not None:
        _write_json(json_path, {"policy": policy, "points": [p.model_dump() for p in points]})
        console.print(f"wrote {json_path}")


@bench_app.command("adaptation")
def bench_adaptation(
    scenario: ScenarioOpt = "bristol",
    shifts: Annotated[
        str, typer.Option(help="Comma-separated: surge, site-failure, demand-move.")
    ] = "surge,site-failure,demand-move",
    llm: Annotated[
        str, typer.Option(help="LM of the agents: local, local:PATH.gguf, openai:MODEL or none.")
    ] = "local",
    reference: Annotated[
        bool, typer.Option(help="Also run every variant with --llm none, for reference.")
    ] = True,
    duration: Annotated[float, typer.Option(min=60.0, help="Arrival horizon, s.")] = 720.0,
    shift_at: Annotated[float, typer.Option(min=1.0, help="When the shift happens, s.")] = 255.0,
    epoch: Annotated[float, typer.Option(min=5.0, help="Planning epoch, s.")] = 30.0,
    seed: Annotated[int, typer.Option(help="First seed of the evaluation episodes.")] = 0,
    seeds: Annotated[int, typer.Option(min=1, help="Evaluation seeds per variant (averaged).")] = 3,
    decision_s: Annotated[
        float,
        typer.Option(
            "--decision-s",
            min=0.0,
            help="Every decision applies this many seconds after its tick, whatever the "
            "machine's load; LM calls are then not cut at their agents' limits.",
        ),
    ] = 1.0,
    wall_decisions: Annotated[
        bool,
        typer.Option(
            "--wall-decisions",
            help="Instead, each decision applies after the wall time its agents took (as in "
            "`run`); episodes then depend on the machine's load.",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(min=1, help="Episodes at once, each a process with cores/N LM threads."),
    ] = 1,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write recovery curves here.")] = None,
    log: Annotated[
        Path | None,
        typer.Option(help="Write each episode's agent decisions (JSON lines) into this folder."),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the stores and every finished episode here; run again with the same "
            "folder to resume an interrupted run (episodes done with the same settings are "
            "not run again). Default: a temporary folder, removed at the end."
        ),
    ] = None,
) -> None:
    """Recovery after a shift with the experience memory off, cold and warm (after a
    warm-up episode, reopened by a new process); each episode in its own process."""
    from edgeagents.adaptation import SHIFTS, AdaptationSettings, run_adaptation

    sc = _scenario(scenario)
    chosen = [x.strip() for x in shifts.split(",") if x.strip()]
    bad = [x for x in chosen if x not in SHIFTS]
    if bad or not chosen:
        fail(f"--shifts {shifts!r}: expected some of {', '.join(SHIFTS)}")
    if shift_at >= duration - 2 * epoch:
        fail(f"--shift-at {shift_at:g}: leave at least two epochs after it (duration {duration:g})")
    _check_writable(json_path, "--json")
    _check_plots(plots)
    _make_folder(log, "--log")
    _make_folder(workdir, "--workdir")
    llms = [llm] + (["none"] if reference and llm != "none" else [])
    try:
        from edgeagents.llm import LMConfigError, check_reachable
        from edgeagents.lmconfig import resolve_lm_config

        lm = resolve_lm_config(llm=llm)
        check_reachable(lm.planner)
        import memory.store  # noqa: F401
    except LMConfigError as e:
        fail(str(e))
    except ImportError as e:
        fail(f"needs the agents and memory extras: pip install 'edgeagents[agents,memory]' "
             f"({e.name} missing)")  # fmt: skip
    settings = AdaptationSettings(
        duration_s=duration, shift_at_s=shift_at, planning_epoch_s=epoch, seed=seed,
        decision_s=None if wall_decisions else decision_s,
    )  # fmt: skip
    total = len(chosen) * len(llms) * (1 + 3 * seeds)
    with _progress("episodes") as progress:
        task = progress.add_task("adaptation", total=total)
        begun: list[str] = []
        t0 = time.monotonic()

        def started(what: str) -> None:
            progress.update(task, description=what, completed=len(begun))
            begun.append(what)
            if not err.is_terminal:
                m = int(time.monotonic() - t0) // 60
                line = f"episode {len(begun)}/{total} ({m // 60}:{m % 60:02d} h:min in): {what}"
                err.print(line, highlight=False)

        try:
            report = run_adaptation(
                sc, shifts=chosen, llms=llms, settings=settings, seeds=seeds, jobs=jobs,
                log_dir=log, on_episode=started, workdir=workdir,
            )  # fmt: skip
        except RuntimeError as e:
            fail(str(e))
    t = Table(
        title=f"Adaptation on {sc.name}: planning epoch {epoch:g} s, shift at {shift_at:g} s, "
        f"seeds {seed}-{seed + seeds - 1}, decisions apply "
        + ("after their wall time" if wall_decisions else f"{decision_s:g} s after their tick"),
        caption="recovery = on the seed-averaged curve, planning epochs from the shift's until "
        "the latency is back within 10% of the steady state after its worst epoch; to best = "
        "the same, against the lowest steady state of the shift's variants; post-shift = "
        "prompts arriving in the "
        f"{settings.window_epochs} epochs after the shift; early = re-plans on a recalled shift; "
        "LM not 1st = planner answers of the LM that picked another plan than the tools' best.",
    )
    for col in ("shift", "llm", "memory", "recovery", "to best", "post-shift mean s", "Jain",
                "steady s", "refused", "early", "stored", "LM not 1st"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("shift", "llm", "memory") else "right")
    for v in report.variants:
        t.add_row(
            v.shift, v.llm, v.memory,
            "never" if v.recovery_epochs is None else str(v.recovery_epochs),
            "never" if v.recovery_to_best_epochs is None else str(v.recovery_to_best_epochs),
            _f(v.post_shift_mean_latency_s), _f(v.jain, "{:.3f}"), _f(v.steady_state_s),
            str(v.refused_after_shift), str(v.early_replans), str(v.stored_experiences),
            f"{v.planner_lm_not_first}/{v.planner_lm_answers}" if v.planner_lm_answers else "-",
        )  # fmt: skip
    console.print(t)
    for key, met in report.targets.items():
        line = ", ".join(f"{k}: {'-' if v is None else ('yes' if v else 'NO')}"
                         for k, v in met.items())  # fmt: skip
        console.print(f"targets {key}: {line}", highlight=False)
    if json_path is not None:
        _write_json(json_path, report.model_dump(mode="json"))
        console.print(f"wrote {json_path}")
    if plots is not None:
        from edgeagents.adaptation import write_adaptation_plots

        for p in write_adaptation_plots(report, plots):
            console.print(f"wrote {p}")


@scenario_app.command("show")
def scenario_show(name: Annotated[str, typer.Argument(help="Built-in name or YAML path.")]) -> None:
    """Print a scenario's sites, GPUs, models, demand and placement."""
    sc = _scenario(name)
    console.print(f"[bold]{sc.name}[/] ({sc.engine}): {sc.description}")
    t = Table(title="sites")
    for col in ("site", "GPUs", "cell users", "placement"):
        t.add_column(col)
    users = {c.site: c.users for c in sc.cells}
    for s in sc.sites:
        gpus = ", ".join(f"{g.count}× {g.type}" for g in s.gpus)
        t.add_row(s.name, gpus, str(users.get(s.name, 0)), ", ".join(sc.placement.get(s.name, [])))
    console.print(t)
    t = Table(title="models and demand")
    for col in ("model", "kind", "weights GB", "rate /s", "arrivals", "SLO s"):
        t.add_column(col)
    demand = {d.model: d for d in sc.workload.demands}
    for m in sc.models:
        d = demand.get(m.name)
        rate = f"{d.arrivals.rate_per_s:g}" if d else "0"
        arr = (f"trace {d.trace}" if d.trace else d.arrivals.process) if d else "-"
        t.add_row(m.name, m.kind, f"{m.weights_gb:g}", rate, arr, f"{m.slo_s:g}")
    console.print(t)
    console.print(
        f"{len(sc.links)} backhaul links; tick {sc.control.tick_s:g} s, planning epoch "
        f"{sc.control.planning_epoch_s:g} s; {len(sc.events)} scheduled events"
    )


@scenario_app.command("validate")
def scenario_validate(path: Annotated[str, typer.Argument(help="YAML scenario file.")]) -> None:
    """Check a scenario file; one line and exit 2 if it is not usable."""
    sc = _scenario(path)
    console.print(
        f"ok: {sc.name}: {len(sc.sites)} sites, {len(sc.cells)} cells, {len(sc.links)} links, "
        f"{len(sc.models)} models"
    )


def _mount_bench_llm() -> None:
    from edgeagents.llmbench_cli import bench_llm

    bench_app.command("llm")(bench_llm)


_mount_bench_llm()


# ---- notices --------------------------------------------------------------------------------


@notices_app.command("parse")
def notices_parse(
    text: Annotated[str, typer.Argument(help="The notice, as an operator wrote it.")],
    at: Annotated[float, typer.Option("--at", help="Publish time, simulated s.")] = 0.0,
    scenario: ScenarioOpt = "bristol",
    llm: Annotated[
        str,
        typer.Option(
            help="LM that reads free text: local, local:PATH.gguf, openai:MODEL, "
            "none (strict form only)."
        ),
    ] = "local",
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the intent as JSON only.")
    ] = False,
    kind_reader: Annotated[
        str,
        typer.Option(
            "--kind-reader",
            help="Who reads the kind: auto (the encoder for a local LM), encoder, lm.",
        ),
    ] = "auto",
) -> None:
    """Read one notice as the planner does: the intent as JSON (path: lm, repaired, strict or
    none)."""
    from edgeagents.llm import LMConfigError, check_reachable, create_chat_model
    from edgeagents.notices import KIND_READERS, Notice, NoticeError, extract_intent, notice_from

    if kind_reader not in KIND_READERS:
        fail(f"--kind-reader {kind_reader!r}: choose {', '.join(KIND_READERS)}")
    sc = _scenario(scenario)
    try:
        notice: Notice = notice_from({"text": text, "publish_s": at}, "notice")
    except NoticeError as e:
        fail(str(e))
    try:
        from edgeagents.lmconfig import resolve_lm_config

        cfg = resolve_lm_config(llm=llm).planner
        check_reachable(cfg)
        model = create_chat_model(cfg.model_copy(update={"max_tokens": 256}))
    except LMConfigError as e:
        fail(str(e))
    except ImportError as e:
        fail(f"reading free text needs the agents extra: pip install 'edgeagents[agents]' "
             f"({e.name} missing)")  # fmt: skip
    intent, cost = extract_intent(
        model,
        notice,
        sc,
        timeout_s=cfg.timeout_s,
        kind_reader=kind_reader,  # type: ignore[arg-type]
    )
    if intent.refusal is not None:
        fail(f"notice not usable ({intent.path}): {intent.refusal}")
    data = intent.model_dump(mode="json")
    if json_out:
        typer.echo(json.dumps(data))
        return
    console.print_json(json.dumps(data))
    console.print(
        f"strict form: {intent.strict()}  ({cost['wall_s']:.2f} s, {cost['tokens']} tokens"
        + (f", kind read by the {cost['kind_by']})" if cost["kind_by"] else ")"),
        highlight=False,
    )


# ---- memory (the experience store; chromadb and the embedding model load lazily) ----------

MemoryPathOpt = Annotated[
    str,
    typer.Option(
        "--path",
        help="Store directory (env EDGEAGENTS_MEMORY_DIR overrides the default).",
        show_default=True,
    ),
]
MemoryEmbeddingOpt = Annotated[
    str,
    typer.Option(
        "--embedding",
        help="Which collection: features (what the agents write) or text (MiniLM embeddings).",
    ),
]


def _memory_store(path: str, embedding: str = "features"):
    try:
        from memory.errors import MemoryStoreError
        from memory.store import ExperienceStore
    except ImportError as e:
        fail(f"the memory needs its extra: pip install 'edgeagents[memory]' ({e.name} missing)")
    if embedding not in ("text", "features"):
        fail(f"--embedding {embedding!r}: expected text or features")
    try:
        return ExperienceStore(path, embedding=embedding)  # type: ignore[arg-type]
    except MemoryStoreError as e:
        fail(str(e))


def _memory_call(fn, *args):
    from memory.errors import MemoryStoreError

    try:
        return fn(*args)
    except MemoryStoreError as e:
        fail(str(e))


@memory_app.command("stats")
def memory_stats(
    path: MemoryPathOpt = MEMORY_DEFAULT, embedding: MemoryEmbeddingOpt = "features"
) -> None:
    """Count, scenarios and simulated time span of the stored experiences."""
    st = _memory_call(_memory_store(path, embedding).stats)
    span = st["time_span_s"]
    console.print(f"path: {st['path']}", highlight=False)
    console.print(f"collection: {st['collection']} ({st['embedding']} embedding)")
    console.print(f"experiences: {st['count']}")
    console.print(f"scenarios: {', '.join(st['scenarios']) or '-'}", highlight=False)
    console.print(f"time span: {f'{span[0]:g}-{span[1]:g} s' if span else '-'}")


@memory_app.command("search")
def memory_search(
    text: Annotated[str, typer.Argument(help="A situation, in words.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many to show.")] = 5,
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Past experiences for a situation in words. A text store ranks by meaning (MiniLM) and
    outcome; a features store lists those whose situation contains every word, best outcome
    first."""
    hits = _memory_call(_memory_store(path, embedding).search, text, k)
    if not hits:
        console.print("no experiences stored")
        return
    t = Table(title=f"top {len(hits)}")
    for col in ("score", "scenario", "t s", "situation", "action", "outcome"):
        t.add_column(col, overflow="fold")
    for exp, score in hits:
        t.add_row(
            f"{score:.3f}",
            exp.scenario,
            f"{exp.time_s:g}",
            exp.situation,
            exp.action,
            exp.outcome,
        )
    console.print(t)


@memory_app.command("export")
def memory_export(
    out: Annotated[Path, typer.Argument(help="JSON-lines file to write.")],
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Write every experience as JSON lines."""
    _check_writable(out, "export")
    n = _memory_call(_memory_store(path, embedding).export, out)
    console.print(f"exported {n} experiences to {out}", highlight=False)


@memory_app.command("import")
def memory_import(
    src: Annotated[Path, typer.Argument(help="JSON-lines file written by export.")],
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Read experiences from JSON lines (same id: replaced, so importing twice is harmless)."""
    if not src.is_file():
        fail(f"import {src}: no such file")
    store = _memory_store(path, embedding)
    n = _memory_call(store.import_, src)
    console.print(f"imported {n} experiences; the store holds {store.count()}", highlight=False)


@memory_app.command("clear")
def memory_clear(
    yes: Annotated[bool, typer.Option("--yes", help="Really delete every experience.")] = False,
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Delete every experience in the store."""
    store = _memory_store(path, embedding)
    n = _memory_call(store.count)
    if not yes:
        fail(f"memory clear would delete {n} experiences in {store.path}: add --yes")
    _memory_call(store.clear)
    console.print(f"deleted {n} experiences from {store.path}", highlight=False)


# ---- serve (the Ray Serve city; serving/ imports Ray only when a run starts) ---------------


def _mount_serve() -> None:
    import functools

    from serving.cli import serve_command

    @functools.wraps(serve_command)
    def serve(**kwargs: object) -> None:
        from edgeagents.llm import LMConfigError

        try:
            serve_command(**kwargs)  # type: ignore[arg-type]
        except ImportError as e:
            fail(f"the Ray Serve city needs its extra: pip install 'edgeagents[serve]' "
                 f"({e.name} missing)")  # fmt: skip
        except (ScenarioError, LMConfigError) as e:
            fail(str(e))

    app.command("serve")(serve)


_mount_serve()


def main() -> None:
    """Entry point: never a traceback for bad input."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
