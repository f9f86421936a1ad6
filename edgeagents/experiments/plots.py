"""Plots a reader can check: latency CDFs, per-model means, timelines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgeagents.experiments.bench import BenchReport
    from edgeagents.experiments.driver import EpisodeRun


def pyplot():
    """matplotlib's pyplot on the Agg backend: plots are files, never windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(report: BenchReport, runs: dict[str, EpisodeRun], out_dir: Path) -> list[Path]:
    """Write latency_cdf.png, per_model_latency.png and timeline.png; return their paths."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, run in runs.items():
        lat = np.sort(run.outcomes.latency_s[~np.isnan(run.outcomes.latency_s)])
        if lat.size:
            ax.plot(lat, np.arange(1, lat.size + 1) / lat.size, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency (s, log)")
    ax.set_ylabel("share of served prompts")
    ax.set_title(f"Latency CDF: {report.scenario}, seed {report.seed}, {report.prompts} prompts")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out_dir / "latency_cdf.png", plt))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    models = [m.model for m in report.results[0].per_model]
    width = 0.8 / max(1, len(report.results))
    x = np.arange(len(models))
    for k, r in enumerate(report.results):
        means = [m.mean_latency_s or 0.0 for m in r.per_model]
        ax.bar(x + k * width, means, width, label=r.policy)
    ax.set_xticks(x + width * (len(report.results) - 1) / 2, models, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("mean latency (s, log)")
    ax.set_title("Mean latency per model type")
    ax.legend(fontsize=7, ncol=2)
    paths.append(save_figure(fig, out_dir / "per_model_latency.png", plt))

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for name, run in runs.items():
        t = [k.time_s for k in run.ticks]
        ax1.plot(t, [k.window_mean_latency_s or np.nan for k in run.ticks], label=name)
        ax2.plot(t, [sum(k.replicas.values()) for k in run.ticks], label=name)
    ax1.set_yscale("log")
    ax1.set_ylabel("windowed mean latency (s)")
    ax1.legend(fontsize=7, ncol=2)
    ax2.set_ylabel("replicas placed")
    ax2.set_xlabel("simulated time (s)")
    fig.suptitle("Timeline: latency and deployments")
    paths.append(save_figure(fig, out_dir / "timeline.png", plt))
    return paths


def save_figure(fig, path: Path, plt) -> Path:
    """Write `fig` to `path` and free it (a long bench draws many)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
