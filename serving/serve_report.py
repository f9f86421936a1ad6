"""`edgeagents serve`'s report: the run as measured beside its replay in the simulator (the
fidelity figure), built after the load, and the fidelity table printed from it."""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import Field

from edgeagents.core.scenario import Scenario
from edgeagents.experiments.bench import BenchReport
from serving.calibration import Calibration, calibrated_scenario, fit_model
from serving.loadgen import SentPrompt
from serving.replay import (
    Fidelity,
    fidelity,
    measured_outcomes,
    replay,
    replay_workload,
    serve_results,
)


class ServeReport(BenchReport):
    """What `edgeagents serve` writes: `edgeagents run`'s report (results: the run as measured,
    its replay in the simulator, the zero-queue bound), the fidelity figure, and the run."""

    policy: str
    llm: str
    rate_per_s: float
    gateway_url: str = Field(description="Where the load went: Serve's proxy or the replica.")
    initial_placement: dict[str, list[str]]
    final_placement: dict[str, list[str]]
    deploy_s: float = Field(description="Wall seconds to bring the initial city up.")
    calibration: Calibration = Field(description="Profiles timed before the load.")
    run_fit_calibration: Calibration = Field(
        description="Profiles fitted to the run's own batches (the probes' where none ran)."
    )
    fidelity: Fidelity
    sites_by_model: dict[str, dict[str, int]] = Field(description="Model -> site -> served.")
    actions_applied: int
    actions_refused: list[str] = Field(description="Refused actions with their reasons.")
    load_s: list[float] = Field(description="Measured load times of models loaded on the way.")
    host_busy_cores_under_load: float | None = Field(
        description="Mean busy cores of the host while prompts were sent (every process)."
    )
    timeline: list[dict[str, Any]] = Field(
        description="Routing and deployment changes, when they took effect (s from load start)."
    )
    requests: list[dict[str, Any]] = Field(
        description="Every prompt sent: sizes as sent, send time, outcome, server timings."
    )


def build_report(
    scenario: Scenario,
    prompts: list[SentPrompt],
    calibration: Calibration,
    timeline: list[Any],
    *,
    policy: str,
    max_batch: int,
    max_queue_per_server: int,
    initial_placement: dict[str, list[str]],
    **run: Any,
) -> ServeReport:
    """Replay the run in the simulator on the calibrated scenario, once with the profiles timed
    before the load (models first placed on the way are fitted from the run) and once with
    profiles fitted to the run's own batches, and put all in a report."""
    served = {
        m.name: [p for p in prompts if p.model == m.name and p.served] for m in scenario.models
    }
    run_fit = {
        m.name: fit_model(m.name, m.kind, served[m.name], source="run") for m in scenario.models
    }
    probes = {m: calibration.models.get(m) or run_fit[m] for m in run_fit}
    run_fit = {m: c if c.source == "run" else probes[m] for m, c in run_fit.items()}
    cal = calibration.model_copy(update={"models": probes})
    sims: dict[str, tuple[Any, dict[str, float]]] = {}
    figures = {}
    t = time.perf_counter()
    for label, models in (("simulator", probes), ("simulator, run fit", run_fit)):
        cal_sc = calibrated_scenario(
            scenario, Calibration(models=models, wall_s=0.0), placement=initial_placement,
            max_batch=max_batch, max_queue_per_server=max_queue_per_server,
        )  # fmt: skip
        workload, order = replay_workload(cal_sc, prompts)
        ps = [prompts[k] for k in order]
        if label == "simulator":
            base, measured = cal_sc, measured_outcomes(cal_sc, ps)
        outcomes = replay(cal_sc, workload, timeline, [p.site for p in ps])
        overhead = {m: c.overhead_s for m, c in models.items()}
        sims[label] = (outcomes, overhead)
        figures[label] = fidelity(cal_sc, workload, measured, outcomes, overhead,
                                  {m: c.source for m, c in models.items()})  # fmt: skip
    sim_wall = time.perf_counter() - t
    codes: dict[str, int] = {}
    sites: dict[str, dict[str, int]] = {}
    for p in ps:
        if p.served:
            sites.setdefault(p.model, {}).setdefault(p.site or "?", 0)
            sites[p.model][p.site or "?"] += 1
        else:
            codes[p.code or "unknown"] = codes.get(p.code or "unknown", 0) + 1
    main = figures["simulator"]
    return ServeReport(
        scenario=f"{scenario.name} on Ray Serve",
        seed=run.pop("seed"),
        duration_s=run.pop("duration_s"),
        engine="profiles measured here",
        prompts=len(workload),
        prompts_by_model=workload.counts_by_model(),
        results=serve_results(policy, base, workload, measured, sims, refused_codes=codes),
        sim_prompts_per_s=2 * len(workload) / sim_wall if sim_wall > 0 else 0.0,
        policy=policy,
        initial_placement=initial_placement,
        calibration=cal,
        run_fit_calibration=Calibration(models=run_fit, wall_s=0.0),
        fidelity=Fidelity(
            models=main.models, overall=main.overall, run_fit=figures["simulator, run fit"]
        ),
        sites_by_model=sites,
        timeline=[d.model_dump(mode="json", exclude_defaults=True) for d in timeline],
        requests=[p.to_dict() for p in ps],
        **run,
    )


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.1%}"


def summary_line(report: ServeReport) -> str:
    """The progress line that closes a run: prompts served, mean latency measured and
    simulated, and the error."""
    f = report.fidelity.overall
    return (
        f"served {report.results[0].served}/{report.prompts}; mean measured "
        f"{_s(f.measured_mean_s)} s, simulated {_s(f.simulated_mean_s)} s, error {_pct(f.error)}"
    )


def print_fidelity(report: ServeReport, console: Any) -> None:
    """The fidelity table: mean latency per model, measured and simulated, and the error."""
    from rich.table import Table

    t = Table(
        title="Fidelity: the simulator's replay of this run beside the measured latency",
        caption="simulated = replay on profiles timed on these servers before the load + their "
        "gateway overhead; run fit = the same with profiles fitted to this run's own server "
        "times; error = simulated / measured - 1, over prompts served in both.",
    )
    columns = ("model", "prompts", "measured s", "simulated s", "error", "overhead s",
               "meas. queue s", "sim. queue s", "meas. infer s", "sim. infer s", "run fit s",
               "error (run fit)")  # fmt: skip
    for col in columns:
        t.add_column(col, justify="left" if col == "model" else "right")
    fid = report.fidelity
    fits = {f.model: f for f in [*fid.run_fit.models, fid.run_fit.overall]} if fid.run_fit else {}
    for f in [*fid.models, fid.overall]:
        m, sm = f.measured_parts_s, f.simulated_parts_s
        fit = fits.get(f.model)
        t.add_row(
            f.model, str(f.prompts), _s(f.measured_mean_s), _s(f.simulated_mean_s),
            _pct(f.error), f"{f.overhead_s:.3f}", f"{m['queue']:.3f}",
            f"{sm['queue'] + sm['cold']:.3f}", f"{m['infer']:.3f}", f"{sm['infer']:.3f}",
            _s(fit.simulated_mean_s if fit else None), _pct(fit.error if fit else None),
        )  # fmt: skip
    console.print(t)
    cal, load = report.calibration.host_busy_cores, report.host_busy_cores_under_load
    console.print(
        f"host busy cores (of {os.cpu_count()}, every process): {_s(cal)} while timing the "
        f"servers, {_s(load)} under load. Actions applied {report.actions_applied}, refused "
        f"{len(report.actions_refused)}; placement now {report.final_placement}",
        highlight=False,
    )
