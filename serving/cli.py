"""`edgeagents serve`: a local city on Ray, the agents (or a baseline) steering it, a load
generator sending the scenario's workload through the gateway, and the measured figures.

A plain function (`run_serve`), a typer command (`serve_command`) for the core CLI to mount,
and a typer app (`app`, `python -m serving.cli serve`). Every site of
the scenario becomes a `site-<name>` resource of one local Ray node; traffic goes to
127.0.0.1 only. The simulator's prediction for the same workload is not printed beside the
measured latency here: on a CPU machine the servers run SmolLM2 and tiny synthetic models, not
the catalogue's GPU models the simulator's profiles describe, so such a figure would mislead.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from collections.abc import Callable

    from edgeagents.workload import Workload


class ModelFigures(BaseModel):
    """What the load generator measured for one model (client side, end to end)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    sent: int
    served: int
    refused: dict[str, int] = Field(description="Error code -> count (429, 503, ...).")
    mean_latency_s: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    sites: dict[str, int] = Field(description="Site -> requests it served.")


class ServeRunReport(BaseModel):
    """One `edgeagents serve` run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str
    policy: str
    duration_s: float
    rate_per_s: float
    initial_placement: dict[str, list[str]]
    final_placement: dict[str, list[str]]
    deploy_s: float = Field(description="Wall seconds to bring the initial city up.")
    models: list[ModelFigures]
    actions_applied: int
    actions_refused: list[str] = Field(description="Refused actions with their reasons.")
    load_s: list[float] = Field(description="Measured load times of models loaded on the way.")


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


def _wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        t = np.arange(int(seconds * 16_000)) / 16_000
        w.writeframes((np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).tobytes())
    return buf.getvalue()


def _png_url() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 120, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _request(scenario: Scenario, w: Workload, i: int) -> tuple[str, dict[str, Any]]:
    """The HTTP path and httpx keyword arguments of prompt `i` (sizes capped for CPU)."""
    model = w.model_names[int(w.model[i])]
    kind = scenario.model(model).kind
    words = " ".join(["city"] * int(min(max(w.input_tokens[i], 1), 200)))
    if kind == "text-to-image":
        body = {"model": model, "prompt": words, "size": "16x16", "num_inference_steps": 2}
        return "/v1/images/generations", {"json": body}
    if kind == "speech-to-text":
        audio = _wav(float(min(max(w.audio_s[i], 0.5), 3.0)))
        return "/v1/audio/transcriptions", {
            "files": {"file": ("a.wav", audio, "audio/wav")},
            "data": {"model": model},
        }
    content: Any = words
    if kind == "vlm":
        content = [
            {"type": "text", "text": words},
            {"type": "image_url", "image_url": {"url": _png_url()}},
        ]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": int(min(max(w.output_tokens[i], 1), 16)),
    }
    return "/v1/chat/completions", {"json": body}


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
        from edgeagents.llm import create_chat_model
        from graphs.controller import AgentsController

        return AgentsController(None if llm == "none" else create_chat_model(llm))
    from edgeagents.policies.deployment import CONTROLLERS

    return CONTROLLERS.create(policy)


def _figures(model: str, rows: list[dict[str, Any]]) -> ModelFigures:
    mine = [r for r in rows if r["model"] == model]
    ok = [r for r in mine if r["status"] == 200]
    lat = np.array([r["latency_s"] for r in ok])
    refused: dict[str, int] = {}
    for r in mine:
        if r["status"] != 200:
            refused[r["code"]] = refused.get(r["code"], 0) + 1
    sites: dict[str, int] = {}
    for r in ok:
        sites[r["site"]] = sites.get(r["site"], 0) + 1
    return ModelFigures(
        model=model,
        sent=len(mine),
        served=len(ok),
        refused=refused,
        mean_latency_s=float(lat.mean()) if lat.size else None,
        p50_latency_s=float(np.percentile(lat, 50)) if lat.size else None,
        p95_latency_s=float(np.percentile(lat, 95)) if lat.size else None,
        sites=sites,
    )


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
    start_ray: bool = True,
    on_line: Callable[[str], None] = print,
) -> ServeRunReport:
    """Bring a city up on Ray, steer it for `duration_s` under load, and report.

    Args:
        scenario: Scenario name or YAML path.
        duration_s: How long prompts are sent (wall seconds).
        rate_per_s: Total prompts per second (the scenario's mix, thinned).
        policy: `agents` (the control graph) or a registered controller (`static`, ...).
        llm: The agents' LM spec (`none`: tools and fallback only).
        port: Serve's HTTP port on 127.0.0.1.
        seed: Seeds the workload and the thinning.
        placement: Initial placement; None: `small_placement` of the scenario.
        start_ray: Start (and at the end stop) a local Ray and Serve here; False: use the
            ones this process is already connected to (tests).
        on_line: Where progress lines go.
    """
    import httpx

    from edgeagents.workload import generate_workload
    from serving.city import RayServeCity
    from serving.config import site_resource

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    sc = load_scenario(scenario)
    placed = placement if placement is not None else small_placement(sc)
    controller = _controller(policy, llm)
    workload = generate_workload(sc, duration_s=duration_s, seed=seed)
    chosen = _thin(workload, rate_per_s, duration_s, seed)
    if start_ray:
        import ray
        from ray import serve

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
        city = RayServeCity(
            {"gateway": {"scenario": scenario, "placement": placed}},
            deploy=start_ray,
        )
        deploy_s = time.perf_counter() - t0
        on_line(f"city up in {deploy_s:.1f} s: {placed}")
        url = f"http://127.0.0.1:{port}"
        rows: list[dict[str, Any]] = []
        lock = threading.Lock()

        def send(i: int) -> None:
            delay = workload.arrival_s[i] - city.now
            if delay > 0:
                time.sleep(delay)
            path, kwargs = _request(sc, workload, i)
            cell = workload.cell_names[int(workload.cell[i])]
            t = time.perf_counter()
            try:
                r = httpx.post(
                    url + path, headers={"x-edgeagents-cell": cell}, timeout=120, **kwargs
                )
                body = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                status = r.status_code
            except httpx.HTTPError as e:
                body, status = {"error": {"code": type(e).__name__}}, 599
            row = {
                "model": workload.model_names[int(workload.model[i])],
                "status": status,
                "latency_s": time.perf_counter() - t,
                "site": (body.get("x_edgeagents") or {}).get("site"),
                "code": (body.get("error") or {}).get("code") if status != 200 else None,
            }
            with lock:
                rows.append(row)

        pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="load")
        futures = [pool.submit(send, i) for i in chosen]
        applied, refused, loads = 0, [], []
        tick = sc.control.tick_s
        t = tick
        while t <= duration_s:
            city.advance(t)
            _, report = controller.step(city, sc, charge_decision_time=False)
            applied += len(report.applied)
            refused += [
                f"{r.action.op} {r.action.model}@{r.action.site}: {r.reason}"
                for r in report.refused
            ]
            loads += list(report.load_s.values())
            on_line(
                f"t={city.now:6.1f}s  sent={len(rows)}/{len(chosen)}  applied={len(report.applied)}"
                f"  refused={len(report.refused)}"
            )
            t = max(t + tick, city.now)
        for f in futures:
            f.result(timeout=300)
        pool.shutdown()
        report = ServeRunReport(
            scenario=sc.name,
            policy=policy,
            duration_s=duration_s,
            rate_per_s=rate_per_s,
            initial_placement=placed,
            final_placement=city.placement,
            deploy_s=deploy_s,
            models=[_figures(m, rows) for m in sc.model_names],
            actions_applied=applied,
            actions_refused=refused,
            load_s=loads,
        )
    finally:
        if start_ray:
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    for line in format_table(report):
        on_line(line)
    return report


def format_table(report: ServeRunReport) -> list[str]:
    """The per-model table, as `edgeagents run` prints one (measured, client side)."""
    head = (
        f"{'model':<24}{'sent':>6}{'served':>8}{'refused':>9}{'mean s':>9}{'p50 s':>8}{'p95 s':>8}"
    )
    lines = [head, "-" * len(head)]
    for m in report.models:

        def f(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f}"

        lines.append(
            f"{m.model:<24}{m.sent:>6}{m.served:>8}{sum(m.refused.values()):>9}"
            f"{f(m.mean_latency_s):>9}{f(m.p50_latency_s):>8}{f(m.p95_latency_s):>8}"
        )
    lines.append(
        f"actions applied {report.actions_applied}, refused {len(report.actions_refused)}; "
        f"placement now {report.final_placement}"
    )
    return lines


def serve_command(
    scenario: str = typer.Option("bristol", help="Scenario name or YAML path."),
    duration: float = typer.Option(60.0, help="Seconds of load."),
    rate: float = typer.Option(1.0, help="Total prompts per second."),
    policy: str = typer.Option("agents", help="agents, or a controller: static, autoscale."),
    llm: str = typer.Option("none", help="LM spec of the agents (none, local, openai:M)."),
    port: int = typer.Option(8000, help="Serve's HTTP port on 127.0.0.1."),
    seed: int = typer.Option(0, help="Seed of the workload and its thinning."),
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report here.")] = None,
) -> None:
    """Run the agents against a local Ray Serve city under load and print the figures."""
    report = run_serve(
        scenario, duration_s=duration, rate_per_s=rate, policy=policy, llm=llm, port=port,
        seed=seed,
    )  # fmt: skip
    if json_path is not None:
        json_path.write_text(json.dumps(report.model_dump(), indent=2))


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
