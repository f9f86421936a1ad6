"""`edgeagents bench suite`: the scenario suite, every baseline and the agents on the same
seeds per scenario; the agents' ratios, a summary row and whether each target is met.

A scenario that fails prints one line (`scenario X failed: reason`) and the others go on; the
JSON lists it under `failed`. The exit code is 0 when at least one scenario ran (a failure is
a result to report, not a reason to lose the others'), 1 when every scenario failed, and 2
for bad input (a bad suite file or option), as every command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from edgeagents.cli.common import (
    JsonOpt,
    check_plots,
    check_writable,
    console,
    err,
    fail,
    number_cell,
    progress_bar,
    save_report,
)

if TYPE_CHECKING:
    from edgeagents.experiments.suite import SuiteFile, SuiteReport

DEFAULT_SEEDS = "0,1,2"
DEFAULT_DURATION_S = 200.0

SuiteOpt = Annotated[
    Path | None, typer.Option("--suite", help="A suite YAML file (default: the shipped suite).")
]
ScenariosOpt = Annotated[
    str | None, typer.Option(help="Comma-separated scenario names of the suite (default: all).")
]
SeedsOpt = Annotated[str, typer.Option(help="Comma-separated seeds, each scenario runs all.")]
DurationSOpt = Annotated[
    float, typer.Option("--duration-s", min=1.0, help="Arrival horizon of each episode, s.")
]
LlmOpt = Annotated[
    str,
    typer.Option(
        help="LM of the agents: none (their tools only, fast), local, local:PATH.gguf or "
        "openai:MODEL (as `edgeagents run --llm`)."
    ),
]
DecisionSOpt = Annotated[
    float,
    typer.Option(
        "--decision-s",
        min=0.0,
        help="Every agent decision applies this many seconds after its tick, whatever the "
        "machine's load (reproducible; LM calls are then not cut at their wall limits).",
    ),
]
PlotsDirOpt = Annotated[Path | None, typer.Option(help="Write suite-ratios.png here.")]


def bench_suite(
    suite: SuiteOpt = None,
    scenarios: ScenariosOpt = None,
    seeds: SeedsOpt = DEFAULT_SEEDS,
    duration_s: DurationSOpt = DEFAULT_DURATION_S,
    llm: LlmOpt = "none",
    decision_s: DecisionSOpt = 1.0,
    json_path: JsonOpt = None,
    plots: PlotsDirOpt = None,
) -> None:
    """Every suite scenario at one load rule's demand: the agents against round-robin, the
    best baseline and the zero-queue bound, their normalized Jain, and the targets."""
    from edgeagents.cli.run import agent_lms_or_fail
    from edgeagents.experiments.suite import SHIPPED_SUITE, SuiteError, load_suite, run_suite
    from edgeagents.experiments.suite.runner import reference_target
    from edgeagents.policies import BASELINES

    try:
        spec = load_suite(suite)
        reference_target(spec)
    except SuiteError as e:
        fail(str(e))
    only = names_or_fail(scenarios, spec)
    seed_list = seeds_or_fail(seeds)
    check_writable(json_path, "--json")
    check_plots(plots)
    lm = agent_lms_or_fail(llm, {}, None)
    chosen = [e.name for e in spec.scenarios if only is None or e.name in only]
    with progress_bar("sim s") as progress:
        episodes = len(chosen) * len(seed_list) * (len(BASELINES) + 1)
        task = progress.add_task("suite", total=episodes * duration_s)
        done: dict[tuple[str, str, int], float] = {}

        def step(scenario: str, policy: str, seed: int, t: float) -> None:
            if not err.is_terminal and not any(k[0] == scenario and k[2] == seed for k in done):
                err.print(f"running {scenario} seed {seed}", highlight=False)
            done[(scenario, policy, seed)] = t
            progress.update(task, description=f"{scenario} {seed} {policy}"[-28:],
                            completed=sum(done.values()))  # fmt: skip

        def failed(scenario: str, reason: str) -> None:
            err.print(f"scenario {scenario} failed: {reason}", highlight=False, soft_wrap=True)

        report = run_suite(
            spec, name=str(suite or f"edgeagents/scenarios/{SHIPPED_SUITE}.yaml"), seeds=seed_list,
            duration_s=duration_s, lm_config=lm, llm=llm, decision_s=decision_s, only=only,
            on_progress=step, on_failed=failed,
        )  # fmt: skip
    print_suite(report)
    save_report(json_path, report)
    if plots is not None and report.scenarios:
        from edgeagents.experiments.suite import write_suite_plot

        console.print(f"wrote {write_suite_plot(report, plots)}")
    if not report.scenarios:
        raise typer.Exit(1)


def names_or_fail(text: str | None, spec: SuiteFile) -> list[str] | None:
    """The scenarios --scenarios names, or one line and exit 2."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in spec.names()]
    if not names or unknown:
        fail(f"--scenarios {text!r}: expected some of {', '.join(spec.names())}")
    return names


def seeds_or_fail(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"--seeds {text!r}: expected comma-separated whole numbers")
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        fail(f"--seeds {text!r}: give at least one seed, each 0 or more, none twice")
    return seeds


def _yes(x: bool | None) -> str:
    return "-" if x is None else ("yes" if x else "NO")


def print_suite(report: SuiteReport) -> None:
    """One row per scenario, the summary row, then each target met or not."""
    from edgeagents.experiments.suite import (
        TARGET_JAIN,
        TARGET_TO_LOWER_BOUND_GEOMEAN,
        TARGET_TO_ROUND_ROBIN,
    )

    when = (
        "after their wall time"
        if report.decision_s is None
        else f"{report.decision_s:g} s after their tick"
    )
    t = Table(
        title=f"Scenario suite {report.suite}: seeds {','.join(map(str, report.seeds))}, "
        f"{report.duration_s:g} s, agents llm {report.llm}, decisions {when}",
        caption=f"Ratios: geometric mean over seeds of the agents' mean latency over "
        "round-robin's, the best baseline's (lowest mean that seed; best = most often) and "
        "the zero-queue bound's; Jain = the agents' normalized Jain, mean over seeds. Load: "
        f"{report.load_rule}. Summary: geometric means (Jain: mean); worst: max (Jain: min).",
    )
    for col in ("scenario", "sites", "×demand", "prompts", "best", "×RR", "×best", "×LB",
                "Jain", "Jain min"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("scenario", "best") else "right")
    for r in report.scenarios:
        t.add_row(
            r.scenario, str(r.sites), f"{r.demand_factor:.2f}", f"{r.prompts_mean:,.0f}",
            r.best_heuristic, number_cell(r.agents_to_round_robin, "{:.3f}"),
            number_cell(r.agents_to_best, "{:.3f}"), number_cell(r.agents_to_lower_bound),
            number_cell(r.jain, "{:.3f}"), number_cell(r.jain_min, "{:.3f}"),
        )  # fmt: skip
    s = report.summary
    if s is not None:
        t.add_section()
        t.add_row("geometric mean", "", "", "", "", number_cell(s.agents_to_round_robin, "{:.3f}"),
                  number_cell(s.agents_to_best, "{:.3f}"), number_cell(s.agents_to_lower_bound),
                  number_cell(s.jain, "{:.3f}"), "")  # fmt: skip
        t.add_row("worst", "", "", "", "", number_cell(s.worst_to_round_robin, "{:.3f}"),
                  number_cell(s.worst_to_best, "{:.3f}"), number_cell(s.worst_to_lower_bound),
                  number_cell(s.worst_jain, "{:.3f}"), "")  # fmt: skip
    console.print(t)
    m = report.targets
    console.print(
        f"targets: agents <= {TARGET_TO_ROUND_ROBIN:g}x round-robin on every scenario: "
        f"{_yes(m['to_round_robin'])}; below the best heuristic on every scenario: "
        f"{_yes(m['below_best'])}; geometric mean agents/lower bound <= "
        f"{TARGET_TO_LOWER_BOUND_GEOMEAN:g}: {_yes(m['to_lower_bound'])}; normalized Jain >= "
        f"{TARGET_JAIN:g} on every scenario: {_yes(m['jain'])}",
        highlight=False,
    )
    for f in report.failed:
        console.print(f"failed: {f.scenario}: {f.error}", highlight=False)
    console.print(f"suite wall time {report.wall_s:.0f} s", highlight=False)
