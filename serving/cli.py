"""`edgeagents serve`: a local city on Ray, the agents (or a baseline) steering it, a load
generator sending the scenario's workload through the gateway, and the same figures as
`edgeagents run`, beside the simulator's prediction for the same run (the fidelity figure).

A plain function (`run_serve`), a typer command (`serve_command`) for the core CLI to mount,
and a typer app (`app`, `python -m serving.cli serve`). Every site of the scenario becomes a
`site-<name>` resource of one local Ray node; traffic goes to 127.0.0.1 only. Before the load,
each model server is timed on a few request sizes (serving/calibration.py); after it, the run
is replayed in the simulator on profiles fitted from those timings (serving/replay.py).
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import numpy as np
import typer
from pydantic import Field

from edgeagents.core.scenario import Scenario, ScenarioError, load_scenario
from edgeagents.experiments.bench import BenchReport
from serving.calibration import (
    Calibration,
    busy_cores,
    calibrate,
    calibrated_scenario,
    cpu_times,
    fit_model,
)
from serving.loadgen import SentPrompt, send, sent_prompt
from serving.replay import (
    Fidelity,
    fidelity,
    measured_outcomes,
    replay,
    replay_workload,
    serve_results,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeagents.sim.workload import Workload


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


class ServeInputError(ValueError):
    """Bad input to `edgeagents serve`: one line, said before anything starts."""


def small_placement(scenario: Scenario) -> dict[str, list[str]]:
    """One site per model: the first site of the scenario's placement that holds it (every
    replica is a process; a 2-core machine cannot start the whole bristol placement quickly)."""
    out: dict[str, list[str]] = {}
    for m in scenario.model_names:
        site = next((s for s, ms in scenario.placement.items() if m in ms), None)
        if site is None:
            site = scenario.site_names[0]
        out.setdefault(site, []).append(m)
    return out


def _thin(w: Workload, rate_per_s: float, duration_s: float, seed: int) -> list[int]:
    """Indices of prompts kept so the total rate is about `rate_per_s`."""
    n = len(w.arrival_s)
    if n == 0:
        return []
    keep = min(1.0, rate_per_s * duration_s / n)
    rng = np.random.default_rng(seed)
    return [i for i in range(n) if rng.random() < keep]


def _controller(policy: str, llm: str) -> Any:
    if policy == "agents":
        from edgeagents.agents.llm import create_chat_model
        from graphs.controller import AgentsController

        return AgentsController(None if llm == "none" else create_chat_model(llm))
    from edgeagents.policies.deployment import CONTROLLERS

    return CONTROLLERS.create(policy)


def check_inputs(scenario: str, duration_s: float, rate_per_s: float, port: int | None) -> Scenario:
    """The scenario, once duration, rate and port are known good; `ServeInputError` (one line)
    otherwise."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ServeInputError(f"--duration {duration_s:g}: give a positive number of seconds")
    if not (math.isfinite(rate_per_s) and rate_per_s > 0):
        raise ServeInputError(f"--rate {rate_per_s:g}: give a positive number of prompts per s")
    try:
        sc = load_scenario(scenario)
    except ScenarioError as e:
        raise ServeInputError(str(e)) from e
    if port is not None:
        if not 1 <= port <= 65535:
            raise ServeInputError(f"--port {port}: give a TCP port in 1..65535")
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as e:
                raise ServeInputError(
                    f"--port {port}: 127.0.0.1:{port} is in use ({e.strerror}); pick a free port"
                ) from e
    return sc


def run_serve(
    scenario: str = "bristol",
    *,
    duration_s: float = 60.0,
    rate_per_s: float = 1.0,
    policy: str = "agents",
    llm: str = "none",
    port: int = 8000,
    seed: int = 0,
    placement: dict[str, list[str]] | None = None,
    calibration_repeats: int = 3,
    calibration_quiet_wait_s: float = 30.0,
    direct_ingress: bool = False,
    start_ray: bool = True,
    on_line: Callable[[str], None] = print,
) -> ServeReport:
    """Bring a city up on Ray, time its servers, steer it for `duration_s` under load, replay
    the run in the simulator, and report both.

    Args:
        scenario: Scenario name or YAML path.
        duration_s: How long prompts are sent (wall seconds).
        rate_per_s: Total prompts per second (the scenario's mix, thinned).
        policy: `agents` (the control graph) or a registered controller (`static`, ...).
        llm: The agents' LM spec (`none`: tools and fallback only).
        port: Serve's HTTP port on 127.0.0.1.
        seed: Seeds the workload and the thinning.
        placement: Initial placement; None: `small_placement` of the scenario.
        calibration_repeats: Timed requests per probe size and model server.
        calibration_quiet_wait_s: How long the timing may wait for a nearly idle host.
        direct_ingress: Send the load straight to the gateway replica's own HTTP server
            (`serving.ingress`; with `start_ray`, the local Ray is started with it).
        start_ray: Start (and at the end stop) a local Ray and Serve here; False: use the
            ones this process is already connected to (tests).
        on_line: Where progress lines go.

    Raises:
        ServeInputError: bad duration, rate, scenario or (with `start_ray`) a port in use.
    """
    import httpx

    from edgeagents.sim.workload import generate_workload
    from serving.city import RayServeCity
    from serving.config import CityAppConfig, site_resource

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sc = check_inputs(scenario, duration_s, rate_per_s, port if start_ray else None)
    placed = placement if placement is not None else small_placement(sc)
    controller = _controller(policy, llm)
    workload = generate_workload(sc, duration_s=duration_s, seed=seed)
    prompts = [sent_prompt(sc, workload, i) for i in _thin(workload, rate_per_s, duration_s, seed)]
    if start_ray:
        import ray
        from ray import serve

        from serving.ingress import enable_direct_ingress

        if direct_ingress:
            enable_direct_ingress()
        ray.init(
            address="local",
            num_cpus=max(8, 2 * len(sc.sites)),
            resources={site_resource(s): 1 for s in sc.site_names},
            include_dashboard=False,
            log_to_driver=False,
        )
        serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        t0 = time.perf_counter()
        config = CityAppConfig.model_validate(
            {"gateway": {"scenario": scenario, "placement": placed}}
        )
        city = RayServeCity(config, deploy=start_ray)
        deploy_s = time.perf_counter() - t0
        on_line(f"city up in {deploy_s:.1f} s: {placed}")
        url = f"http://127.0.0.1:{port}"
        if direct_ingress:
            from serving.ingress import direct_ingress_url

            url = direct_ingress_url()
            on_line(f"gateway replica serves HTTP at {url} (direct ingress)")
        client = httpx.Client(
            base_url=url,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        asked = {p.model for p in prompts}
        first = [m for m in sc.model_names if m in asked and any(m in ms for ms in placed.values())]
        cal = calibrate(
            client, sc, first, prompts, repeats=calibration_repeats,
            quiet_wait_s=calibration_quiet_wait_s, on_line=on_line,
        )  # fmt: skip
        start = city.now
        cpu0 = cpu_times()
        lock = threading.Lock()
        done: list[SentPrompt] = []

        def go(p: SentPrompt) -> None:
            delay = start + p.arrival_s - city.now
            if delay > 0:
                time.sleep(delay)
            p.sent_s = city.now - start
            send(client, p)
            with lock:
                done.append(p)

        pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="load")
        futures = [pool.submit(go, p) for p in prompts]
        applied, refused, loads = 0, [], []
        tick = sc.control.tick_s
        t = tick
        while t <= duration_s:
            city.advance(start + t)
            _, report = controller.step(city, sc, charge_decision_time=False)
            applied += len(report.applied)
            refused += [
                f"{r.action.op} {r.action.model}@{r.action.site}: {r.reason}"
                for r in report.refused
            ]
            loads += list(report.load_s.values())
            on_line(
                f"t={city.now - start:6.1f}s  sent={len(done)}/{len(prompts)}  "
                f"applied={len(report.applied)}  refused={len(report.refused)}"
            )
            t = max(t + tick, city.now - start)
        for f in futures:
            f.result(timeout=300)
        pool.shutdown()
        load_busy = busy_cores(cpu0)
        client.close()
        final = city.placement
        timeline = [
            d.model_copy(update={"time_s": max(0.0, d.time_s - start)}) for d in city.timeline
        ]
    finally:
        if start_ray:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    report = build_report(
        sc, prompts, cal, timeline,
        policy=policy, llm=llm, seed=seed, duration_s=duration_s, rate_per_s=rate_per_s,
        gateway_url=url, initial_placement=placed, final_placement=final, deploy_s=deploy_s,
        actions_applied=applied, actions_refused=refused, load_s=loads,
        host_busy_cores_under_load=load_busy,
        max_batch=config.max_batch, max_queue_per_server=config.gateway.max_queue_per_server,
    )  # fmt: skip
    f = report.fidelity.overall
    on_line(
        f"served {report.results[0].served}/{report.prompts}; mean measured "
        f"{_s(f.measured_mean_s)} s, simulated {_s(f.simulated_mean_s)} s, error {_pct(f.error)}"
    )
    return report


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


def _fail(message: str) -> NoReturn:
    from edgeagents.cli.common import fail

    fail(message)


def serve_command(
    scenario: str = typer.Option("bristol", help="Scenario name or YAML path."),
    duration: float = typer.Option(60.0, help="Seconds of load."),
    rate: float = typer.Option(1.0, help="Total prompts per second."),
    policy: str = typer.Option("agents", help="agents, or a controller: static, autoscale."),
    llm: str = typer.Option("none", help="LM spec of the agents (none, local, openai:M)."),
    port: int = typer.Option(8000, help="Serve's HTTP port on 127.0.0.1."),
    direct_ingress: bool = typer.Option(
        False,
        "--direct-ingress",
        help="Send the load straight to the gateway replica's HTTP server on 127.0.0.1 (Ray "
        "Serve's experimental direct ingress: no proxy actor hop).",
    ),
    seed: int = typer.Option(0, help="Seed of the workload and its thinning."),
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Run the agents against a local Ray Serve city under load; print `edgeagents run`'s table
    for the run as measured and as the simulator replays it, and the fidelity per model."""
    from rich.console import Console

    from edgeagents.cli.common import print_table

    try:
        check_inputs(scenario, duration, rate, port)
        report = run_serve(
            scenario, duration_s=duration, rate_per_s=rate, policy=policy, llm=llm, port=port,
            seed=seed, direct_ingress=direct_ingress,
            on_line=lambda line: print(line, file=sys.stderr),
        )  # fmt: skip
    except ServeInputError as e:
        _fail(str(e))
    print_table(report)
    print_fidelity(report, Console(width=None if sys.stdout.isatty() else 150))
    if json_path is not None:
        json_path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
        print(f"wrote {json_path}")


app = typer.Typer(help=__doc__.splitlines()[0], add_completion=False, no_args_is_help=True)
app.command("serve")(serve_command)


@app.callback()
def _group() -> None:
    """Keeps `serve` a subcommand, as under `edgeagents serve`."""


def main() -> None:
    """Entry point: `python -m serving.cli serve --duration 30`."""
    app()


if __name__ == "__main__":
    main()


def register(app: typer.Typer) -> None:
    """Adds `edgeagents serve` to the CLI (the `edgeagents.cli` entry point of this package);
    Ray loads only when a run starts."""
    import functools

    @functools.wraps(serve_command)
    def serve(**kwargs: object) -> None:
        from edgeagents.agents.llm import LMConfigError

        try:
            serve_command(**kwargs)  # type: ignore[arg-type]
        except ImportError as e:
            _fail(f"the Ray Serve city needs its extra: pip install 'edgeagents[serve]' "
                  f"({e.name} missing)")  # fmt: skip
        except (ScenarioError, LMConfigError) as e:
            _fail(str(e))

    app.command("serve")(serve)
