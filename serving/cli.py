"""`edgeagents serve`: a local city on Ray, the agents (or a baseline) steering it, a load
generator sending the scenario's workload through the gateway, and the same figures as
`edgeagents run`, beside the simulator's prediction for the same run (the fidelity figure).

A plain function (`run_serve`); the typer command that runs it is `serving.command`. Every
site of the scenario becomes a `site-<name>` resource of one local Ray node; traffic goes to
127.0.0.1 only. Before the load, each model server is timed on a few request sizes
(serving/calibration.py); after it, the run is replayed in the simulator on profiles fitted
from those timings (serving/replay.py).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeagents.core.scenario import Scenario, ScenarioError, load_scenario
from serving.calibration import Calibration, busy_cores, calibrate, cpu_times
from serving.config import CityAppConfig, site_resource
from serving.loadgen import SentPrompt, send, sent_prompt
from serving.serve_report import ServeReport, build_report, summary_line

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from edgeagents.sim.workload import Workload
    from serving.city import RayServeCity


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

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sc = check_inputs(scenario, duration_s, rate_per_s, port if start_ray else None)
    placed = placement if placement is not None else small_placement(sc)
    controller = _controller(policy, llm)
    workload = generate_workload(sc, duration_s=duration_s, seed=seed)
    prompts = [sent_prompt(sc, workload, i) for i in _thin(workload, rate_per_s, duration_s, seed)]
    if start_ray:
        _start_ray(sc, port, direct_ingress)
    try:
        city, config, deploy_s, url = _start_city(
            scenario, placed, port, direct_ingress, start_ray, on_line
        )
        client = httpx.Client(
            base_url=url,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        cal = _time_servers(
            client, sc, prompts, placed, calibration_repeats, calibration_quiet_wait_s, on_line
        )
        run = _load_and_steer(city, controller, sc, prompts, client, duration_s, on_line)
    finally:
        if start_ray:
            _stop_ray()
    report = build_report(
        sc, prompts, cal, run.timeline,
        policy=policy, llm=llm, seed=seed, duration_s=duration_s, rate_per_s=rate_per_s,
        gateway_url=url, initial_placement=placed, final_placement=run.final_placement,
        deploy_s=deploy_s, actions_applied=run.applied, actions_refused=run.refused,
        load_s=run.load_s, host_busy_cores_under_load=run.busy_cores,
        max_batch=config.max_batch, max_queue_per_server=config.gateway.max_queue_per_server,
    )  # fmt: skip
    on_line(summary_line(report))
    return report


def _start_ray(sc: Scenario, port: int, direct_ingress: bool) -> None:
    """A local Ray node with a `site-<name>` resource per site, and Serve on 127.0.0.1:`port`."""
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


def _stop_ray() -> None:
    """Serve, then Ray, down (what `_start_ray` started)."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def _start_city(
    scenario: str,
    placed: dict[str, list[str]],
    port: int,
    direct_ingress: bool,
    start_ray: bool,
    on_line: Callable[[str], None],
) -> tuple[RayServeCity, CityAppConfig, float, str]:
    """The city, deployed (`start_ray`) or attached to; the seconds that took; and the URL the
    load goes to (Serve's proxy, or the gateway replica's own server with `direct_ingress`)."""
    from serving.city import RayServeCity

    t0 = time.perf_counter()
    config = CityAppConfig.model_validate({"gateway": {"scenario": scenario, "placement": placed}})
    city = RayServeCity(config, deploy=start_ray)
    deploy_s = time.perf_counter() - t0
    on_line(f"city up in {deploy_s:.1f} s: {placed}")
    url = f"http://127.0.0.1:{port}"
    if direct_ingress:
        from serving.ingress import direct_ingress_url

        url = direct_ingress_url()
        on_line(f"gateway replica serves HTTP at {url} (direct ingress)")
    return city, config, deploy_s, url


def _time_servers(
    client: httpx.Client,
    sc: Scenario,
    prompts: list[SentPrompt],
    placed: dict[str, list[str]],
    repeats: int,
    quiet_wait_s: float,
    on_line: Callable[[str], None],
) -> Calibration:
    """Time the servers of the models the prompts ask for that are placed now."""
    asked = {p.model for p in prompts}
    first = [m for m in sc.model_names if m in asked and any(m in ms for ms in placed.values())]
    return calibrate(
        client, sc, first, prompts, repeats=repeats,
        quiet_wait_s=quiet_wait_s, on_line=on_line,
    )  # fmt: skip


@dataclass
class _LoadRun:
    """What steering the city under load did, on the load's clock (s from its start)."""

    applied: int
    refused: list[str]
    load_s: list[float]
    busy_cores: float | None
    final_placement: dict[str, list[str]]
    timeline: list[Any]


def _load_and_steer(
    city: RayServeCity,
    controller: Any,
    sc: Scenario,
    prompts: list[SentPrompt],
    client: httpx.Client,
    duration_s: float,
    on_line: Callable[[str], None],
) -> _LoadRun:
    """Send the prompts at their arrival times from a thread pool while the controller steers
    the city every control tick for `duration_s`; waits for every answer, then closes `client`."""
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
            f"{r.action.op} {r.action.model}@{r.action.site}: {r.reason}" for r in report.refused
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
    timeline = [d.model_copy(update={"time_s": max(0.0, d.time_s - start)}) for d in city.timeline]
    return _LoadRun(applied, refused, loads, load_busy, final, timeline)
