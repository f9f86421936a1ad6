"""What every command shares: the consoles, one-line failures, option checks and tables."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgeagents.core.scenario import BUILTIN_SCENARIOS, Scenario, ScenarioError, load_scenario

if TYPE_CHECKING:
    from edgeagents.sim.workload import Workload


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
DurationOpt = Annotated[float | None, typer.Option(min=1.0, help="Arrival horizon in simulated s.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of workload and routing.")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write results here.")]
PlotsOpt = Annotated[Path | None, typer.Option(help="Write PNG plots into this folder.")]


MEMORY_DEFAULT = os.environ.get("EDGEAGENTS_MEMORY_DIR") or "~/.cache/edgeagents/memory"
"""Same as `memory.store.default_memory_dir()`, without importing `memory` at import time."""


def fail(message: str) -> NoReturn:
    """One clear line on stderr, exit code 2, nothing written."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def scenario_or_fail(name: str) -> Scenario:
    try:
        return load_scenario(name)
    except ScenarioError as e:
        fail(str(e))


def check_writable(path: Path | None, what: str) -> None:
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and path.is_dir():
        fail(f"{what} {path}: is a directory, expected a file path")
    if not parent.is_dir():
        fail(f"{what} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        fail(f"{what} {path}: directory {parent} is not writable")


def policies_or_fail(text: str | None) -> list[str]:
    from edgeagents.experiments.bench import resolve_policies

    try:
        return resolve_policies(text)
    except KeyError as e:
        fail(str(e.args[0]))


def make_folder(path: Path | None, what: str) -> None:
    """Create the folder an option names, or fail in one line."""
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"{what} {path}: cannot create the folder ({e.strerror or e})")
    if not os.access(path, os.W_OK):
        fail(f"{what} {path}: the folder is not writable")


def check_plots(plots: Path | None) -> None:
    if plots is not None and plots.exists() and not plots.is_dir():
        fail(f"--plots {plots}: exists and is not a directory")


def workload_or_fail(
    sc: Scenario, duration: float | None, seed: int, trace: Path | None
) -> tuple[float, Workload]:
    """The episode's arrival horizon and prompts; a bad trace is one line and exit 2."""
    from edgeagents.sim.workload import generate_workload, load_trace

    horizon = sc.duration_s if duration is None else duration
    try:
        if trace is not None:
            load_trace(trace)
        return horizon, generate_workload(sc, duration_s=horizon, seed=seed, trace_path=trace)
    except ScenarioError as e:
        fail(str(e))


def write_text(path: Path, text: str, what: str = "output") -> None:
    """Write through a temporary file beside `path`, then replace it: a reader never sees half
    a file, and a failed write leaves nothing behind (one line, exit 2)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        fail(f"{what} {path}: cannot write ({e.strerror or e})")


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2), "--json")


def save_report(path: Path | None, report) -> None:
    """The report as JSON where --json says, and a line saying so."""
    if path is not None:
        write_json(path, report.model_dump(mode="json"))
        console.print(f"wrote {path}")


def save_plots(folder: Path | None, report, runs) -> None:
    """`bench` and `run`'s PNG plots into the --plots folder, a line for each."""
    if folder is not None:
        from edgeagents.experiments.plots import write_plots

        for p in write_plots(report, runs, folder):
            console.print(f"wrote {p}")


def progress_bar(unit: str = "sim s") -> Progress:
    return Progress(
        TextColumn("{task.description:>18}"),
        BarColumn(),
        TextColumn(f"{{task.completed:>6.0f}}/{{task.total:.0f}} {unit}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def number_cell(x: float | None, fmt: str = "{:.2f}") -> str:
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
            number_cell(r.mean_latency_s),
            number_cell(r.p50_latency_s),
            number_cell(r.p95_latency_s),
            number_cell(r.p99_latency_s),
            f"{r.slo_attainment:.0%}",
            number_cell(r.jain, "{:.3f}"),
            number_cell(r.jain_rescaled, "{:.3f}"),
            str(r.served),
            str(r.refused),
            number_cell(r.ratio_to_round_robin),
            number_cell(r.lower_bound_ratio),
        )
    console.print(t)


def notices_file(path: Path) -> list:
    from edgeagents.core.notice import NoticeError, load_notices

    try:
        return load_notices(str(path))
    except NoticeError as e:
        fail(str(e))
