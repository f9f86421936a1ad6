"""The `edgeagents` command line (typer + rich): one module per command group, registered here.

Other packages add commands through the `edgeagents.cli` entry-point group (`serving` adds
`serve`): each entry point is a function that takes the root typer app. So the CLI never
imports them, and they may import it. The top layer of the library: it may import every layer
below (experiments, graphs, memory, agents, ...); nothing in the library imports it.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from edgeagents.cli.bench import bench_app
from edgeagents.cli.common import err, fail
from edgeagents.cli.memory import memory_app
from edgeagents.cli.notices import notices_app
from edgeagents.cli.run import run
from edgeagents.cli.scenario import scenario_app

PLUGIN_GROUP = "edgeagents.cli"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Latency- and fairness-aware multi-modal inference across a city of edge GPU servers.",
    pretty_exceptions_enable=False,
)
app.command("run")(run)
app.add_typer(bench_app, name="bench")
app.add_typer(scenario_app, name="scenario")
app.add_typer(memory_app, name="memory")
app.add_typer(notices_app, name="notices")


def register_plugins(root: typer.Typer) -> None:
    """Commands of installed packages (entry points in the `edgeagents.cli` group); one that
    cannot load is left out with a one-line warning, the rest of the CLI still works."""
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()(root)
        except Exception as e:  # a broken plugin must not take the CLI down
            err.print(f"warning: command {ep.name!r} left out: {type(e).__name__}: {e}")


register_plugins(app)


def main() -> None:
    """Entry point: never a traceback for bad input."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


__all__ = ["app", "fail", "main", "register_plugins"]

if __name__ == "__main__":
    main()
