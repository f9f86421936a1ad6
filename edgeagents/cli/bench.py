"""`edgeagents bench`: baselines compared, simulator scaling, adaptation; `bench llm` is in
`edgeagents.cli.llmbench`, `bench faults` in `edgeagents.cli.faults`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from edgeagents.cli.common import (
    DurationOpt,
    JsonOpt,
    PlotsOpt,
    ScenarioOpt,
    SeedOpt,
    check_plots,
    check_writable,
    console,
    err,
    fail,
    make_folder,
    number_cell,
    policies_or_fail,
    print_table,
    progress_bar,
    save_plots,
    save_report,
    scenario_or_fail,
    workload_or_fail,
    write_json,
)
from edgeagents.cli.faults import bench_faults
from edgeagents.cli.llmbench import bench_llm
from edgeagents.cli.suite import bench_suite
from edgeagents.core.region_spec import PROMPTS_PER_S_PER_1000_USERS

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario
    from edgeagents.experiments.adaptation import AdaptationReport, AdaptationSettings
    from edgeagents.experiments.scale import ScaleReport, Spread

bench_app = typer.Typer(help="Benchmarks on the simulated city.", pretty_exceptions_enable=False)

PoliciesOpt = Annotated[
    str | None, typer.Option(help="Comma-separated policies (default: every baseline).")
]
TraceOpt = Annotated[
    Path | None, typer.Option(help="CSV trace for the text-LLM share (TIMESTAMP,...).")
]
ShiftsOpt = Annotated[str, typer.Option(help="Comma-separated: surge, site-failure, demand-move.")]
AgentsLlmOpt = Annotated[
    str, typer.Option(help="LM of the agents: local, local:PATH.gguf, openai:MODEL or none.")
]
ReferenceOpt = Annotated[
    bool, typer.Option(help="Also run every variant with --llm none, for reference.")
]
DecisionSOpt = Annotated[
    float,
    typer.Option(
        "--decision-s",
        min=0.0,
        help="Every decision applies this many seconds after its tick, whatever the "
        "machine's load; LM calls are then not cut at their agents' limits.",
    ),
]
WallDecisionsOpt = Annotated[
    bool,
    typer.Option(
        "--wall-decisions",
        help="Instead, each decision applies after the wall time its agents took (as in "
        "`run`); episodes then depend on the machine's load.",
    ),
]
JobsOpt = Annotated[
    int,
    typer.Option(min=1, help="Episodes at once, each a process with cores/N LM threads."),
]
LogFolderOpt = Annotated[
    Path | None,
    typer.Option(help="Write each episode's agent decisions (JSON lines) into this folder."),
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option(
        help="Keep the stores and every finished episode here; run again with the same "
        "folder to resume an interrupted run (episodes done with the same settings are "
        "not run again). Default: a temporary folder, removed at the end."
    ),
]


@bench_app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    scenario: ScenarioOpt = "bristol",
    policies: PoliciesOpt = None,
    duration: DurationOpt = None,
    seed: SeedOpt = 0,
    trace: TraceOpt = None,
    json_path: JsonOpt = None,
    plots: PlotsOpt = None,
) -> None:
    """Run every policy on the same scenario, workload and seed; print and save the figures."""
    if ctx.invoked_subcommand is not None:
        return
    from edgeagents.experiments.bench import compare

    sc = scenario_or_fail(scenario)
    names = policies_or_fail(policies)
    check_writable(json_path, "--json")
    check_plots(plots)
    horizon, workload = workload_or_fail(sc, duration, seed, trace)

    with progress_bar() as progress:
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
    save_report(json_path, report)
    save_plots(plots, report, runs)


@bench_app.command("scaling")
def bench_scaling(
    scenario: ScenarioOpt = "bristol",
    sizes: Annotated[str, typer.Option(help="Comma-separated durations, s.")] = "300,900,2700",
    policy: Annotated[str, typer.Option(help="Policy simulated.")] = "least-loaded",
    seed: int = 0,
    json_path: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Simulator speed at three workload sizes: prompts per wall second, µs per prompt."""
    from edgeagents.experiments.bench import scaling

    sc = scenario_or_fail(scenario)
    try:
        durations = [float(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        fail(f"--sizes {sizes!r}: expected comma-separated numbers of seconds")
    if not durations or min(durations) <= 0:
        fail("--sizes: give at least one positive duration")
    policies_or_fail(policy)
    check_writable(json_path, "--json")
    points = scaling(sc, durations, policy=policy, seed=seed)
    t = Table(title=f"Simulator cost vs size ({policy}, one core)")
    for col in ("duration s", "prompts", "wall s", "prompts/s", "µs/prompt"):
        t.add_column(col, justify="right")
    for p in points:
        t.add_row(f"{p.duration_s:.0f}", str(p.prompts), f"{p.wall_s:.2f}",
                  f"{p.prompts_per_s:,.0f}", f"{p.us_per_prompt:.1f}")  # fmt: skip
    console.print(t)
    if json_path is not None:
        write_json(json_path, {"policy": policy, "points": [p.model_dump() for p in points]})
        console.print(f"wrote {json_path}")


@bench_app.command("scale")
def bench_scale(
    sites: Annotated[str, typer.Option(help="Comma-separated region sizes, sites.")] = "7,100,1000",
    seed: SeedOpt = 0,
    prompts: Annotated[
        int, typer.Option(min=1, help="Prompts of the greedy episode to aim for per size.")
    ] = 60_000,
    prompts_per_s: Annotated[
        float | None,
        typer.Option(
            "--prompts-per-s",
            help="Offered load at the largest size, prompts/s (above 0); smaller sizes offer "
            "the same per site; every site's GPUs scale with the load. Default: 10 per site "
            "(10,000 at 1,000 sites).",
        ),
    ] = None,
    native_demand: Annotated[
        bool,
        typer.Option(
            "--native-demand",
            help=f"Instead, each city's own {PROMPTS_PER_S_PER_1000_USERS:g} prompts/s per "
            "1,000 users.",
        ),
    ] = False,
    agent_ticks: Annotated[int, typer.Option(min=1, help="Control ticks of the agents.")] = 4,
    epoch_ticks: Annotated[
        int, typer.Option(min=1, help="Ticks per planning epoch in the agents' run.")
    ] = 3,
    agents: Annotated[bool, typer.Option(help="Run the agents (--llm none).")] = True,
    json_path: JsonOpt = None,
) -> None:
    """Per generated region size: simulator speed, routing µs per prompt, the agents'
    decision wall time (--llm none), peak memory, and their growth with the size."""
    from edgeagents.experiments.scale import PROMPTS_PER_S_PER_SITE, region_scale

    sizes = sizes_or_fail(sites)
    if prompts_per_s is None:
        prompts_per_s = PROMPTS_PER_S_PER_SITE * max(sizes)
    if not (math.isfinite(prompts_per_s) and prompts_per_s > 0):
        fail(f"--prompts-per-s {prompts_per_s:g}: give a rate above 0 (or --native-demand)")
    check_writable(json_path, "--json")
    with progress_bar("steps") as progress:
        task = progress.add_task("scale", total=3 * len(sizes))
        begun: list[str] = []

        def started(what: str) -> None:
            progress.update(task, description=what, completed=len(begun))
            begun.append(what)

        try:  # a rate past some site's 64 GPUs fails at the first size (the same per site)
            report = region_scale(
                sizes, seed=seed, target_prompts=prompts, agent_ticks=agent_ticks,
                agents=agents, epoch_ticks=epoch_ticks,
                prompts_per_s=None if native_demand else prompts_per_s, on_step=started,
            )  # fmt: skip
        except ValueError as e:
            fail(str(e))
    print_scale(report)
    save_report(json_path, report)


def sizes_or_fail(text: str) -> list[int]:
    """The sizes --sites names, or one line and exit 2."""
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"--sites {text!r}: expected comma-separated whole numbers of sites")
    if not sizes or min(sizes) < 1:
        fail(f"--sites {text!r}: give at least one size, each of 1 site or more")
    return sizes


def print_scale(report: ScaleReport) -> None:
    """Two tables, one row per size (the simulator's figures, then the agents'), then the
    growth between sizes and the targets."""
    load = (
        "native demand"
        if report.prompts_per_s is None
        else f"{report.prompts_per_s:,.0f} prompts/s offered at the largest size"
    )
    t = Table(
        title=f"Region scale, seed {report.seed}, {load}: the simulator (greedy)",
        caption="offered = the city's prompts/s (GPUs scaled with it); served/refused and mean "
        "s = the greedy episode's; prompts/s per wall and per CPU second and µs/prompt leave "
        "out the city's setup (network paths); route = inside Router.route, per prompt; peak = "
        "tracemalloc peak of workload + greedy episode.",
    )
    for col in ("sites", "regions", "offered /s", "GPUs/replicas", "served/refused", "mean s",
                "prompts/s wall/cpu", "µs/prompt", "route µs", "peak MiB"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in report.rows:
        t.add_row(
            f"{r.sites:,}", f"{r.agents.regions:,}", f"{r.rate_per_s:,.0f}",
            f"{r.gpus:,}/{r.replicas:,}", f"{r.served:,}/{r.refused:,}",
            number_cell(r.mean_latency_s),
            f"{r.prompts_per_s:,.0f}/{r.prompts_per_cpu_s:,.0f}", f"{r.us_per_prompt:.1f}",
            f"{r.route_us_per_prompt:.1f}", f"{r.peak_mib:.1f}",
        )  # fmt: skip
    console.print(t)
    t = Table(
        title=f"Region scale: the agents (--llm none, {report.agent_ticks} ticks, planning "
        f"every {report.epoch_ticks})",
        caption="tick = the agents' step less the epoch decision, wall s p50/p95/max over the "
        "ticks (tick cpu: the step's CPU s, p95, ticks without planning); epoch = the "
        "planner's decision (several regions: planner to coordinator), wall s p50/max (epoch "
        "cpu: the planning steps' CPU s, max); deployers per tick; RSS = process peak after "
        "the agents (ru_maxrss, cumulative).",
    )
    for col in ("sites", "tick p50/p95/max s", "tick cpu", "epoch p50/max s", "epoch cpu",
                "deployers", "RSS MiB"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in report.rows:
        a = r.agents
        t.add_row(
            f"{r.sites:,}", _spread(a.tick_decision, ("p50", "p95", "max")),
            _spread(a.tick_cpu, ("p95",)), _spread(a.epoch_decision, ("p50", "max")),
            _spread(a.epoch_cpu, ("max",)),
            "/".join(str(k.deployers) for k in a.ticks) or "-",
            number_cell(a.peak_rss_mib, "{:.0f}"),
        )  # fmt: skip
    console.print(t)
    for g in report.growth:
        cells = ", ".join(f"{k} ×{number_cell(v)}" for k, v in g.model_dump().items()
                          if k not in ("from_sites", "to_sites", "sites"))  # fmt: skip
        console.print(f"growth {g.from_sites:,} -> {g.to_sites:,} sites: {cells}", highlight=False)
    met = report.targets
    console.print(
        f"targets at 1,000 sites: simulator real time on one core: {_met(met.get('sim'))}; "
        f"route <= {report.route_target_us:g} µs/prompt: {_met(met['route'])}; at every size: "
        f"tick p95 <= tick: {_met(met['tick'])}; every epoch <= {report.planner_target_s:g} s: "
        f"{_met(met['planner'])}",
        highlight=False,
    )


def _spread(x: Spread | None, keys: tuple[str, ...]) -> str:
    return "-" if x is None else "/".join(f"{getattr(x, k):.2f}" for k in keys)


def _met(x: bool | None) -> str:
    return "-" if x is None else ("yes" if x else "NO")


@bench_app.command("adaptation")
def bench_adaptation(
    scenario: ScenarioOpt = "bristol",
    shifts: ShiftsOpt = "surge,site-failure,demand-move",
    llm: AgentsLlmOpt = "local",
    reference: ReferenceOpt = True,
    duration: Annotated[float, typer.Option(min=60.0, help="Arrival horizon, s.")] = 720.0,
    shift_at: Annotated[float, typer.Option(min=1.0, help="When the shift happens, s.")] = 255.0,
    epoch: Annotated[float, typer.Option(min=5.0, help="Planning epoch, s.")] = 30.0,
    seed: Annotated[int, typer.Option(help="First seed of the evaluation episodes.")] = 0,
    seeds: Annotated[int, typer.Option(min=1, help="Evaluation seeds per variant (averaged).")] = 3,
    decision_s: DecisionSOpt = 1.0,
    wall_decisions: WallDecisionsOpt = False,
    jobs: JobsOpt = 1,
    json_path: JsonOpt = None,
    plots: Annotated[Path | None, typer.Option(help="Write recovery curves here.")] = None,
    log: LogFolderOpt = None,
    workdir: WorkdirOpt = None,
) -> None:
    """Recovery after a shift with the experience memory off, cold and warm (after a
    warm-up episode, reopened by a new process); each episode in its own process."""
    from edgeagents.experiments.adaptation import AdaptationSettings

    sc = scenario_or_fail(scenario)
    chosen = shifts_or_fail(shifts)
    if shift_at >= duration - 2 * epoch:
        fail(f"--shift-at {shift_at:g}: leave at least two epochs after it (duration {duration:g})")
    check_writable(json_path, "--json")
    check_plots(plots)
    make_folder(log, "--log")
    make_folder(workdir, "--workdir")
    llms = [llm] + (["none"] if reference and llm != "none" else [])
    check_agents_and_memory(llm)
    settings = AdaptationSettings(
        duration_s=duration, shift_at_s=shift_at, planning_epoch_s=epoch, seed=seed,
        decision_s=None if wall_decisions else decision_s,
    )  # fmt: skip
    report = adaptation_with_progress(
        sc, chosen, llms, settings, seeds=seeds, jobs=jobs, log=log, workdir=workdir
    )
    print_adaptation(report, seeds)
    save_report(json_path, report)
    if plots is not None:
        from edgeagents.experiments.adaptation import write_adaptation_plots

        for p in write_adaptation_plots(report, plots):
            console.print(f"wrote {p}")


def shifts_or_fail(shifts: str) -> list[str]:
    """The shifts --shifts names, or one line and exit 2."""
    from edgeagents.experiments.adaptation import SHIFTS

    chosen = [x.strip() for x in shifts.split(",") if x.strip()]
    bad = [x for x in chosen if x not in SHIFTS]
    if bad or not chosen:
        fail(f"--shifts {shifts!r}: expected some of {', '.join(SHIFTS)}")
    return chosen


def check_agents_and_memory(llm: str) -> None:
    """Before the first episode: the LM answers and the extras the episodes need are there."""
    try:
        from edgeagents.agents.llm import LMConfigError, check_reachable
        from edgeagents.agents.lmconfig import resolve_lm_config

        lm = resolve_lm_config(llm=llm)
        check_reachable(lm.planner)
        import memory.store  # noqa: F401
    except LMConfigError as e:
        fail(str(e))
    except ImportError as e:
        fail(f"needs the agents and memory extras: pip install 'edgeagents[agents,memory]' "
             f"({e.name} missing)")  # fmt: skip


def adaptation_with_progress(
    sc: Scenario,
    chosen: list[str],
    llms: list[str],
    settings: AdaptationSettings,
    *,
    seeds: int,
    jobs: int,
    log: Path | None,
    workdir: Path | None,
) -> AdaptationReport:
    """`run_adaptation` under a progress bar, or a line per episode when stderr is no
    terminal; a failed episode is one line and exit 2."""
    from edgeagents.experiments.adaptation import run_adaptation

    total = len(chosen) * len(llms) * (1 + 3 * seeds)
    with progress_bar("episodes") as progress:
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
    return report


def print_adaptation(report: AdaptationReport, seeds: int) -> None:
    """The variants' table, then whether each (shift, LM) met the targets."""
    settings = report.settings
    seed, epoch, shift_at = settings.seed, settings.planning_epoch_s, settings.shift_at_s
    t = Table(
        title=f"Adaptation on {report.scenario}: planning epoch {epoch:g} s, shift at "
        f"{shift_at:g} s, seeds {seed}-{seed + seeds - 1}, decisions apply "
        + (
            "after their wall time"
            if settings.decision_s is None
            else f"{settings.decision_s:g} s after their tick"
        ),
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
            number_cell(v.post_shift_mean_latency_s), number_cell(v.jain, "{:.3f}"),
            number_cell(v.steady_state_s),
            str(v.refused_after_shift), str(v.early_replans), str(v.stored_experiences),
            f"{v.planner_lm_not_first}/{v.planner_lm_answers}" if v.planner_lm_answers else "-",
        )  # fmt: skip
    console.print(t)
    for key, met in report.targets.items():
        line = ", ".join(f"{k}: {'-' if v is None else ('yes' if v else 'NO')}"
                         for k, v in met.items())  # fmt: skip
        console.print(f"targets {key}: {line}", highlight=False)


bench_app.command("llm")(bench_llm)
bench_app.command("faults")(bench_faults)
bench_app.command("suite")(bench_suite)
