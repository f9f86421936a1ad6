"""`edgeagents scenario`: show, validate and generate scenarios."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from edgeagents.cli.common import check_writable, console, fail, scenario_or_fail, write_text
from edgeagents.core.region_spec import PROMPTS_PER_S_PER_1000_USERS, RegionSpec

scenario_app = typer.Typer(help="Inspect, validate and generate scenarios.", no_args_is_help=True)


@scenario_app.command("show")
def scenario_show(name: Annotated[str, typer.Argument(help="Built-in name or YAML path.")]) -> None:
    """Print a scenario's sites, GPUs, models, demand and placement."""
    sc = scenario_or_fail(name)
    console.print(f"[bold]{sc.name}[/] ({sc.engine}): {sc.description}")
    t = Table(title="sites")
    for col in ("site", "GPUs", "cell users", "placement"):
        t.add_column(col)
    users = {c.site: c.users for c in sc.cells}
    for s in sc.sites:
        gpus = ", ".join(f"{g.count}× {g.type}" for g in s.gpus)
        t.add_row(s.name, gpus, str(users.get(s.name, 0)), ", ".join(sc.placement.get(s.name, [])))
    console.print(t)
    t = Table(title="models and demand")
    for col in ("model", "kind", "weights GB", "rate /s", "arrivals", "SLO s"):
        t.add_column(col)
    demand = {d.model: d for d in sc.workload.demands}
    for m in sc.models:
        d = demand.get(m.name)
        rate = f"{d.arrivals.rate_per_s:g}" if d else "0"
        arr = (f"trace {d.trace}" if d.trace else d.arrivals.process) if d else "-"
        t.add_row(m.name, m.kind, f"{m.weights_gb:g}", rate, arr, f"{m.slo_s:g}")
    console.print(t)
    console.print(
        f"{len(sc.links)} backhaul links; tick {sc.control.tick_s:g} s, planning epoch "
        f"{sc.control.planning_epoch_s:g} s; {len(sc.events)} scheduled events"
    )


@scenario_app.command("validate")
def scenario_validate(path: Annotated[str, typer.Argument(help="YAML scenario file.")]) -> None:
    """Check a scenario file; one line and exit 2 if it is not usable."""
    sc = scenario_or_fail(path)
    console.print(
        f"ok: {sc.name}: {len(sc.sites)} sites, {len(sc.cells)} cells, {len(sc.links)} links, "
        f"{len(sc.models)} models"
    )


@scenario_app.command("generate")
def scenario_generate(
    sites: Annotated[int, typer.Option(help="Edge sites in the region (1 or more).")],
    seed: Annotated[
        int, typer.Option(help="Seed of every draw (0 or more).")
    ] = RegionSpec.model_fields["seed"].default,
    out: Annotated[
        Path | None, typer.Option(help="Write the YAML here (else print it to stdout).")
    ] = None,
    prompts_per_s: Annotated[
        float | None,
        typer.Option(
            "--prompts-per-s",
            help="The whole region's offered load, prompts/s (above 0): demand split by "
            "population as always, every site's GPUs scaled with it. Default: "
            f"{PROMPTS_PER_S_PER_1000_USERS:g} prompts/s per 1,000 users.",
        ),
    ] = None,
) -> None:
    """Generate a region: access rings, aggregation and core backhaul, GPUs, cells, demand."""
    from edgeagents.core.region import generate_region, region_summary, region_yaml

    try:
        spec = RegionSpec(sites=sites, seed=seed, prompts_per_s=prompts_per_s)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        option = str(first["loc"][0]).replace("_", "-")
        fail(f"--{option} {first['input']}: {first['msg'].lower()}")
    check_writable(out, "--out")
    try:
        sc = generate_region(spec)
    except ValueError as e:
        fail(str(e))
    text = region_yaml(sc, spec)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_text(out, text, "--out")
    console.print(f"wrote {out}: {region_summary(sc)}", highlight=False)
