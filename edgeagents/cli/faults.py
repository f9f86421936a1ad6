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
        RayRowFigures,
    )

COLUMNS = (
    "case", "policy", "offered", "served", "refused", "lost", "before", "during", "after",
    "recover", "fallback", "LM failed", "status",
)  # fmt: skip
RAY_ROW_S = 45.0
"""Default wall seconds of one row on the Ray target."""

TargetOpt = Annotated[
    str,
    typer.Option(help="Where the faults happen: sim (the simulated city) or ray (the Ray Serve "
                 "city on a local Ray cluster, one node per site; the serve extra)."),
]  # fmt: skip
CasesOpt = Annotated[
    str | None,
    typer.Option(help="Comma-separated fault cases (default: all of the target's). sim: "
                 "no-fault, site-crash, link-cut, overload, lm-down, lm-slow, lm-garbage-text, "
                 "lm-garbage-json, memory-unreadable, kill-and-resume. ray: no-fault, "
                 "node-removal, site-crash, replica-crash, overload, the four lm- cases (and "
                 "link-cut, memory-unreadable, kill-and-resume, listed as not run there)."),
]  # fmt: skip
FaultsDurationOpt = Annotated[
    float | None,
    typer.Option(help="Arrival horizon: simulated s (sim; default: the scenario's), or wall s "
                 f"per row (ray; default {RAY_ROW_S:g})."),
]  # fmt: skip
RateOpt = Annotated[
    float | None,
    typer.Option(help="ray only: prompts per s sent outside the overload window (default 1)."),
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
    rate: RateOpt = None,
    json_path: JsonOpt = None,
) -> None:
    """Fault cases on the simulated city (site crash, link cut, overload, the LM endpoint down,
    slow or answering garbage, the experience store unreadable, `edgeagents run` killed and
    resumed), the agents beside greedy-autoscale on the same workload and seed; or, with
    `--target ray`, on the Ray Serve city (a node removed, a site crashed, a replica killed
    under load, overload, the LM faults). Exit 1 if a case fails: a prompt lost, a control
    loop stopped, an LM call answered in an LM row, no warning in the memory row, a resumed
    run unlike the uninterrupted one."""
    sc, settings, chosen = faults_input_or_fail(
        target, scenario, cases, duration, seed, llm, decision_s, json_path, rate
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
    rate: float | None = None,
) -> tuple[Scenario, FaultsSettings, list[str]]:
    """Every option checked before any episode: bad input is one line and exit 2."""
    from edgeagents.experiments.faults import FaultsSettings, RayFaultsSettings, fault_window
    from edgeagents.experiments.faults.targets import TargetUnavailable, fault_target

    try:
        found = fault_target(target)
    except (ValueError, TargetUnavailable) as e:
        fail(str(e))
    ray = target == "ray"
    if rate is not None and not ray:
        fail(f"--rate {rate:g}: applies to --target ray only")
    if rate is not None and not (rate > 0 and rate < float("inf")):
        fail(f"--rate {rate:g}: expected a positive number of prompts per s")
    if duration is not None and not duration > 0:
        fail(f"--duration {duration:g}: expected a positive number of simulated seconds")
    if seed < 0:
        fail(f"--seed {seed}: expected a seed >= 0")
    if not decision_s >= 0:
        fail(f"--decision-s {decision_s:g}: expected seconds >= 0")
    known = found.cases
    named = (cases or ",".join(known)).split(",")
    chosen = list(dict.fromkeys(c.strip() for c in named if c.strip()))
    bad = [c for c in chosen if c not in known]
    if bad or not chosen:
        fail(f"--cases {cases!r}: expected some of {', '.join(known)} (--target {target})")
    check_writable(json_path, "--json")
    sc = scenario_or_fail(scenario)
    horizon = (RAY_ROW_S if ray else sc.duration_s) if duration is None else duration
    tick = sc.control.tick_s
    if horizon < 3 * tick:
        fail(f"--duration {horizon:g}: too short for a fault window (at least 3 control ticks, "
             f"{3 * tick:g} s)")  # fmt: skip
    check_extras(llm, [c for c in chosen if c not in found.not_implemented])
    start, end = fault_window(sc, horizon)
    settings = FaultsSettings(
        target=target, scenario=scenario, seed=seed, duration_s=horizon,
        decision_s=decision_s, llm=llm, fault_start_s=start, fault_end_s=end,
        # A Ray row lasts seconds, not minutes: latency is judged over one tick, every second.
        recovery_window_s=tick if ray else sc.control.window_s,
        recovery_step_s=1.0 if ray else tick,
        ray=RayFaultsSettings(rate_per_s=rate or 1.0) if ray else None,
    )  # fmt: skip
    try:
        found.check_scenario(sc, settings)
    except ValueError as e:
        fail(str(e))
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
    """The target's campaign under a progress bar on stderr (when it is a terminal)."""
    from edgeagents.experiments.faults.targets import fault_target

    target = fault_target(settings.target)
    with progress_bar("cases") as progress:
        task = progress.add_task("faults", total=len(cases))

        def on_progress(case: str, share: float) -> None:
            progress.update(task, description=case, completed=cases.index(case) + share)

        return target.run(sc, settings, cases, on_progress=on_progress)


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
    if row.ray is not None:
        parts.append(ray_details(row.ray))
    parts += [f"FAILED: {p}" for p in row.problems]
    return f"{row.case}: " + "; ".join(x for x in parts if x)


def ray_details(r: RayRowFigures) -> str:
    """What the Ray city did in a row: retries, sites, the agents' actions."""
    said = f"{r.retried} served after a retry"
    if r.site_events:
        said += "; the city saw " + ", ".join(r.site_events)
    said += f"; the agents' actions: {r.applied} applied"
    if r.load_s:
        said += " (loads " + ", ".join(f"{x:g}" for x in r.load_s) + " s)"
    if r.refused_actions:
        said += f", {len(r.refused_actions)} refused (first: {r.refused_actions[0]})"
    return said


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


def title(report: FaultsReport) -> str:
    """What the campaign ran on, in one line."""
    s = report.settings
    window = f"fault window {s.fault_start_s:g}-{s.fault_end_s:g} s (LM rows: the whole run)"
    if s.ray is None:
        return (
            f"Fault cases on {report.scenario}: seed {s.seed}, {s.duration_s:g} s, "
            f"{report.prompts} prompts, {window}, decisions apply {s.decision_s:g} s after "
            "their tick"
        )
    return (
        f"Fault cases on the Ray Serve city ({report.scenario}, {s.ray.sites} sites as Ray "
        f"nodes, its text models only): seed {s.seed}, {s.duration_s:g} wall s per row, "
        f"{report.prompts} prompts per row ({s.ray.rate_per_s:g}/s), {window}, queues bounded "
        f"at {s.ray.max_queue_per_server} per server, the agents only"
    )


def print_faults(report: FaultsReport) -> None:
    """One line per policy and case (the agents, then the baseline), then a line per case."""
    s = report.settings
    t = Table(
        box=box.SIMPLE,
        show_edge=False,
        pad_edge=False,
        title=title(report),
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
