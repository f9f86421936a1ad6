"""`edgeagents bench faults`: the fault campaign's input checks, progress and table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from edgeagents.cli.common import (
    JsonOpt,
    ScenarioOpt,
    check_writable,
    console,
    err,
    fail,
    number_cell,
    progress_bar,
    save_report,
    scenario_or_fail,
)

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario
    from edgeagents.experiments.faults import (
        FaultRow,
        FaultsReport,
        FaultsSettings,
        PolicyFigures,
        ProcessFaultFigures,
    )

TARGETS = ("sim", "ray")
COLUMNS = (
    "case", "policy", "offered", "served", "refused", "lost", "before", "during", "after",
    "recover", "fallback", "LM failed", "status",
)  # fmt: skip
RAY_NOT_YET = "not yet: the Ray Serve city's fault cases are not implemented"

TargetOpt = Annotated[
    str, typer.Option(help="Where the faults happen: sim (the simulated city). ray: not yet.")
]
CasesOpt = Annotated[
    str | None,
    typer.Option(help="Comma-separated fault cases (default: all): no-fault, site-crash, "
                 "link-cut, overload, lm-down, lm-slow, lm-garbage-text, lm-garbage-json, "
                 "memory-unreadable, kill-and-resume."),
]  # fmt: skip
FaultsDurationOpt = Annotated[
    float | None, typer.Option(help="Arrival horizon in simulated s (default: the scenario's).")
]
FaultsSeedOpt = Annotated[int, typer.Option(help="Seed of workload and routing (>= 0).")]
FaultsLlmOpt = Annotated[
    str,
    typer.Option(help="LM of the agents outside the LM rows (those use openai:fake on a failing "
                 "endpoint): none, local, local:PATH.gguf or openai:MODEL."),
]  # fmt: skip
FaultsDecisionSOpt = Annotated[
    float,
    typer.Option(
        "--decision-s",
        help="Every decision applies this many seconds after its tick, whatever the machine's "
        "load, so that a row repeats to the digit.",
    ),
]


def bench_faults(
    target: TargetOpt = "sim",
    scenario: ScenarioOpt = "bristol",
    cases: CasesOpt = None,
    duration: FaultsDurationOpt = None,
    seed: FaultsSeedOpt = 0,
    llm: FaultsLlmOpt = "none",
    decision_s: FaultsDecisionSOpt = 1.0,
    json_path: JsonOpt = None,
) -> None:
    """Fault cases on the simulated city (site crash, link cut, overload, the LM endpoint down,
    slow or answering garbage, the experience store unreadable, `edgeagents run` killed and
    resumed), the agents beside greedy-autoscale on the same workload and seed. Exit 1 if a
    case fails: a prompt lost, a control loop stopped, an LM call answered in an LM row, no
    warning in the memory row, a resumed run unlike the uninterrupted one."""
    sc, settings, chosen = faults_input_or_fail(
        target, scenario, cases, duration, seed, llm, decision_s, json_path
    )
    report = faults_with_progress(sc, settings, chosen)
    print_faults(report)
    save_report(json_path, report)
    if report.failed:
        names = ", ".join(r.case for r in report.failed)
        err.print(f"fault cases failed: {names}", highlight=False)
        raise typer.Exit(1)


def faults_input_or_fail(
    target: str,
    scenario: str,
    cases: str | None,
    duration: float | None,
    seed: int,
    llm: str,
    decision_s: float,
    json_path: Path | None,
) -> tuple[Scenario, FaultsSettings, list[str]]:
    """Every option checked before any episode: bad input is one line and exit 2."""
    from edgeagents.experiments.faults import CASES, FaultsSettings, fault_window

    if target == "ray":
        fail(RAY_NOT_YET)
    if target not in TARGETS:
        fail(f"--target {target!r}: expected sim (ray: not yet)")
    if duration is not None and not duration > 0:
        fail(f"--duration {duration:g}: expected a positive number of simulated seconds")
    if seed < 0:
        fail(f"--seed {seed}: expected a seed >= 0")
    if not decision_s >= 0:
        fail(f"--decision-s {decision_s:g}: expected seconds >= 0")
    named = (cases or ",".join(CASES)).split(",")
    chosen = list(dict.fromkeys(c.strip() for c in named if c.strip()))
    bad = [c for c in chosen if c not in CASES]
    if bad or not chosen:
        fail(f"--cases {cases!r}: expected some of {', '.join(CASES)}")
    check_writable(json_path, "--json")
    sc = scenario_or_fail(scenario)
    horizon = sc.duration_s if duration is None else duration
    tick = sc.control.tick_s
    if horizon < 3 * tick:
        fail(f"--duration {horizon:g}: too short for a fault window (at least 3 control ticks, "
             f"{3 * tick:g} s)")  # fmt: skip
    check_extras(llm, chosen)
    start, end = fault_window(sc, horizon)
    settings = FaultsSettings(
        scenario=scenario, seed=seed, duration_s=horizon, decision_s=decision_s, llm=llm,
        fault_start_s=start, fault_end_s=end, recovery_window_s=sc.control.window_s,
        recovery_step_s=tick,
    )  # fmt: skip
    return sc, settings, chosen


def check_extras(llm: str, cases: list[str]) -> None:
    """The agents' LM answers and the extras the chosen cases need are installed."""
    from edgeagents.cli.run import agent_lms_or_fail

    agent_lms_or_fail(llm, {}, None)
    try:
        import langgraph  # noqa: F401

        if any(c.startswith("lm-") for c in cases):
            import langchain_openai  # noqa: F401
        if "memory-unreadable" in cases:
            import chromadb  # noqa: F401

            import memory.store  # noqa: F401
    except ImportError as e:
        fail(f"needs the agents and memory extras: pip install 'edgeagents[agents,memory]' "
             f"({e.name} missing)")  # fmt: skip


def faults_with_progress(sc: Scenario, settings: FaultsSettings, cases: list[str]) -> FaultsReport:
    """`run_faults` under a progress bar on stderr (when it is a terminal)."""
    from edgeagents.experiments.faults import run_faults

    with progress_bar("cases") as progress:
        task = progress.add_task("faults", total=len(cases))

        def on_progress(case: str, share: float) -> None:
            progress.update(task, description=case, completed=cases.index(case) + share)

        return run_faults(sc, settings, cases, on_progress=on_progress)


def recovery_cell(fig: PolicyFigures) -> str:
    if fig.recovery_s is None:
        return "-"
    return "never" if fig.recovery_s == "never" else f"{fig.recovery_s:g}"


def lm_cell(row: FaultRow, fig: PolicyFigures) -> str:
    """LM calls that failed to the fallback, of those made (the agents' line of an LM row)."""
    if fig.paths is None or row.kind != "lm":
        return ""
    return f"{fig.paths.lm_failed}/{fig.paths.lm_calls}"


def details(row: FaultRow) -> str:
    """The line under the table for one case: the fault, refusals by reason, and what the
    LM and memory rows checked."""
    if row.status == "not implemented":
        return f"{row.case}: not implemented: {row.fault}: {row.reason}"
    parts = [row.fault]
    for fig in (row.agents, row.baseline):
        if fig is not None and fig.refused_by_reason:
            reasons = ", ".join(f"{n} {r}" for r, n in fig.refused_by_reason.items())
            parts.append(f"{fig.policy} refused {reasons}")
    if row.lm is not None and row.agents is not None and row.agents.paths is not None:
        p = row.agents.paths
        said = f"{p.lm_calls} LM calls, {p.lm_failed} failed to the fallback, {p.lm_answered} "
        said += "answered" + ("" if row.lm.server_mode == "down" else
                              f"; the server got {row.lm.requests} requests")  # fmt: skip
        parts.append(said)
    if row.memory is not None:
        m = row.memory
        parts.append(
            f"{m.warnings} warnings, {m.stored_after_fault} experiences stored after the window, "
            + (f"the store reopens ({m.reopened_count} stored)" if m.reopens
               else f"the store does NOT reopen ({m.reopen_error})")
        )  # fmt: skip
    if row.process is not None:
        parts.append(process_details(row.process))
    parts += [f"FAILED: {p}" for p in row.problems]
    return f"{row.case}: " + "; ".join(x for x in parts if x)


def process_details(p: ProcessFaultFigures) -> str:
    """The kill-and-resume row in words: the kill, the file, the resume, the comparison."""
    said = (f"exit {p.killed_exit_code} after {p.killed_after_cycles} agents cycles; checkpoint "
            + ("opens" if p.checkpoint_opens else f"does NOT open ({p.open_error})"))  # fmt: skip
    if p.resume_exit_code != 0:
        return said + f"; resume failed: {p.resume_error}"
    replay = "-" if p.replay_s is None else f"{p.replay_s:.2f}"
    return said + (
        f"; resumed in {p.resume_wall_s:.1f} s (replay {replay} s) against "
        f"{p.uninterrupted_wall_s:.1f} s uninterrupted; figures "
        + ("the same as" if p.same_figures else "NOT the same as")
        + " the uninterrupted run's (wall clock aside)"
    )


def print_faults(report: FaultsReport) -> None:
    """One line per policy and case (the agents, then the baseline), then a line per case."""
    s = report.settings
    t = Table(
        box=box.SIMPLE,
        show_edge=False,
        pad_edge=False,
        title=f"Fault cases on {report.scenario}: seed {s.seed}, {s.duration_s:g} s, "
        f"{report.prompts} prompts, fault window {s.fault_start_s:g}-{s.fault_end_s:g} s (LM "
        f"rows: the whole run), decisions apply {s.decision_s:g} s after their tick",
        caption="before / during / after: mean latency (s) of prompts arriving before, inside "
        "and after the window; recover: s from the window's end to the first "
        f"{s.recovery_window_s:g}-s window whose mean is within 10% of the mean before; lost = "
        "offered - served - refused; fallback: agent decisions; LM failed: LM calls that "
        "failed to the fallback. A row fails if a prompt is lost, a control loop stops before "
        "the horizon, an LM call answers in an LM row, the memory row does not warn, or "
        "the kill-and-resume row's resumed run differs from an uninterrupted one.",
    )
    for col in COLUMNS:
        left = col in ("case", "policy", "status")
        t.add_column(col, justify="left" if left else "right", no_wrap=True)
    for row in report.rows:
        figs = [f for f in (row.agents, row.baseline) if f is not None]
        if not figs:
            t.add_row(row.case, *["-"] * 11, row.status)
        for k, fig in enumerate(figs):
            t.add_row(
                row.case if k == 0 else "", fig.policy, str(fig.offered), str(fig.served),
                str(fig.refused), str(fig.lost), number_cell(fig.mean_before_s),
                number_cell(fig.mean_during_s), number_cell(fig.mean_after_s),
                recovery_cell(fig),
                f"{fig.paths.fallback}/{fig.paths.decisions}" if fig.paths else "",
                lm_cell(row, fig), (row.status if row.status == "ok" else "FAILED")
                if k == 0 else "",
            )  # fmt: skip
    console.print(t)
    for row in report.rows:
        console.print(details(row), highlight=False, soft_wrap=True)
