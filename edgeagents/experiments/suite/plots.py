"""The suite's one chart: per scenario, the agents' ratios and Jain beside the targets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgeagents.experiments.suite.runner import SuiteReport

BARS = (
    ("agents_to_round_robin", "agents / round-robin"),
    ("agents_to_best", "agents / best heuristic"),
    ("agents_to_lower_bound", "agents / lower bound"),
    ("jain", "normalized Jain (agents)"),
)


def write_suite_plot(report: SuiteReport, out_dir: Path) -> Path:
    """suite-ratios.png: grouped bars per scenario (log scale), the targets as lines."""
    from edgeagents.experiments.plots import pyplot, save_figure
    from edgeagents.experiments.suite import runner

    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [r.scenario for r in report.scenarios]
    x = np.arange(len(names))
    width = 0.8 / len(BARS)
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(names) + 2), 5))
    for k, (field, label) in enumerate(BARS):
        ys = [np.nan if getattr(r, field) is None else getattr(r, field) for r in report.scenarios]
        ax.bar(x + (k - (len(BARS) - 1) / 2) * width, ys, width, label=label)
    for y, label, va in ((runner.TARGET_TO_ROUND_ROBIN, "target agents/RR", "bottom"),
                         (1.0, "1: agents/best target, Jain's best", "bottom"),
                         (runner.TARGET_TO_LOWER_BOUND_GEOMEAN, "target agents/LB (geo. mean)",
                          "bottom"),
                         (runner.TARGET_JAIN, "target Jain", "top")):  # fmt: skip
        ax.axhline(y, ls=":", lw=1, color="grey")
        ax.annotate(label, (len(names) - 0.5, y), fontsize=7, color="grey", ha="right", va=va)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ratio (log scale)")
    ax.set_title(f"Scenario suite {report.suite}: seeds {report.seeds}, {report.duration_s:g} s, "
                 f"llm {report.llm}")  # fmt: skip
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir / "suite-ratios.png", plt)
