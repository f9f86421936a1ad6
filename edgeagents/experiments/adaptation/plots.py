"""The adaptation report's recovery curves, one PNG per shift."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgeagents.experiments.adaptation.scoring import AdaptationReport


def write_adaptation_plots(report: AdaptationReport, out_dir: Path) -> list[Path]:
    """One PNG per shift: mean latency per planning epoch, a line per (memory, llm)."""
    from edgeagents.experiments.plots import pyplot, save_figure

    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    epoch_s = report.settings.planning_epoch_s
    paths = []
    for shift, what in report.shifts.items():
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for v in report.variants:
            if v.shift != shift:
                continue
            xs = [(k + 0.5) * epoch_s for k in range(len(v.epoch_mean_latency_s))]
            ys = [np.nan if y is None else y for y in v.epoch_mean_latency_s]
            style = "-" if v.llm != "none" else "--"
            rec, best = (
                "never" if r is None else r for r in (v.recovery_epochs, v.recovery_to_best_epochs)
            )
            label = f"{v.memory}, llm {v.llm} (recovery {rec}, to best {best})"
            ax.plot(xs, ys, style, marker=".", label=label)
        first = next((v for v in report.variants if v.shift == shift), None)
        if first is not None and first.epoch_mean_bound_s:
            xs = [(k + 0.5) * epoch_s for k in range(len(first.epoch_mean_bound_s))]
            ys = [np.nan if y is None else y for y in first.epoch_mean_bound_s]
            ax.plot(xs, ys, ":", color="grey", label="zero-queue bound of the same prompts")
        ax.axvline(report.settings.shift_at_s, color="grey", lw=1)
        ax.set_xlabel(f"arrival time, s (planning epochs of {epoch_s:g} s)")
        ax.set_ylabel("mean latency of the epoch's prompts, s")
        ax.set_title(f"{report.scenario}: {what}")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        paths.append(save_figure(fig, out_dir / f"adaptation-{shift}.png", plt))
    return paths
