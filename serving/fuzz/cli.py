"""Fuzzing the gateway's HTTP surface with hypothesis-generated requests.

`python -m serving.fuzz`'s command line: runs the campaign, prints the report as a table."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import NoReturn

from serving.fuzz.campaign import FuzzReport, fuzz_gateway
from serving.fuzz.contract import DEFAULT_TIMEOUT_S


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit 2, without argparse's usage lines."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _print(report: FuzzReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gateway fuzzing, seed {report.seed}")
    for col in ("category", "sent", "2xx", "4xx", "5xx", "hang", "other"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for name, c in report.by_category.items():
        row = (c.sent, c.success, c.client_error, c.server_error, c.hang, c.nonconforming)
        table.add_row(name, *map(str, row))
    console = Console()
    console.print(table)
    statuses = ", ".join(f"{s}: {n}" for s, n in report.by_status.items())
    console.print(f"{report.sent} requests in {report.elapsed_s:.1f} s; statuses {statuses}")
    console.print(
        f"5xx {report.server_errors}, hangs {report.hangs}, other {report.nonconforming}; "
        f"valid requests afterwards: {'served' if report.healthy_after else 'FAILED'}"
    )
    for v in report.violations[:10]:
        console.print(
            f"  [{v.category}] {v.reason}: {v.request}\n    -> {v.answer[:160]}", markup=False
        )
    for p in report.unhealthy:
        console.print(f"  unhealthy: {p}", markup=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m serving.fuzz`: 0 when every answer kept the contract, 1 when not, 2 on bad
    arguments."""
    p = OneLineParser(prog="python -m serving.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=1000, help="requests to send (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds before a hang")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the report")
    args = p.parse_args(argv)
    logging.getLogger("python_multipart").setLevel(logging.ERROR)  # a warning per bad upload
    if args.count < 1:
        p.error(f"--count must be at least 1, got {args.count}")
    if not args.timeout > 0:
        p.error(f"--timeout must be positive, got {args.timeout}")
    if args.json is not None and not args.json.parent.is_dir():
        p.error(f"--json: no directory {str(args.json.parent)!r}")
    report = fuzz_gateway(args.count, args.seed, timeout_s=args.timeout)
    _print(report)
    if args.json is not None:
        args.json.write_text(report.model_dump_json(indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
