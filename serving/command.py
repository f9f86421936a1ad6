"""`edgeagents serve` as a typer command: its options and how it fails. The run itself
(`serving.cli.run_serve`) loads when the command starts, so mounting `serve` on the
`edgeagents` CLI (the `edgeagents.cli` entry point, `register`) loads nothing of the Ray city.
Also a standalone app: `python -m serving.command serve --duration 30`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer


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
    from serving.cli import ServeInputError, check_inputs, run_serve
    from serving.serve_report import print_fidelity

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


def register(app: typer.Typer) -> None:
    """Adds `edgeagents serve` to the CLI (the `edgeagents.cli` entry point of this package);
    Ray loads only when a run starts."""
    import functools

    @functools.wraps(serve_command)
    def serve(**kwargs: object) -> None:
        from edgeagents.agents.llm import LMConfigError
        from edgeagents.core.scenario import ScenarioError

        try:
            serve_command(**kwargs)  # type: ignore[arg-type]
        except ImportError as e:
            _fail(f"the Ray Serve city needs its extra: pip install 'edgeagents[serve]' "
                  f"({e.name} missing)")  # fmt: skip
        except (ScenarioError, LMConfigError) as e:
            _fail(str(e))

    app.command("serve")(serve)


app = typer.Typer(help=__doc__.splitlines()[0], add_completion=False, no_args_is_help=True)
app.command("serve")(serve_command)


@app.callback()
def _group() -> None:
    """Keeps `serve` a subcommand, as under `edgeagents serve`."""


def main() -> None:
    """Entry point: `python -m serving.command serve --duration 30`."""
    app()


if __name__ == "__main__":
    main()
