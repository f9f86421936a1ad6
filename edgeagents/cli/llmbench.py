"""`edgeagents bench llm`: the typer command (`edgeagents.cli.bench` registers it).

What it shows and why is in `edgeagents.experiments.llmbench`; this module only parses
options, checks every LM before asking anything, and prints the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeagents.cli.common import (
    check_writable,
    console,
    fail,
    number_cell,
    progress_bar,
    save_report,
)

if TYPE_CHECKING:
    from rich.console import Console

    from edgeagents.core.scenario import Scenario
    from edgeagents.experiments.llmbench import LabelledNotice, LLMBenchReport, LMRow, Menu

DEFAULT_LLMS = ("none", "local")

LlmsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--llm",
        help="An LM to benchmark, repeatable: none, local, local:PATH.gguf, openai:MODEL "
        "(default: none and local).",
    ),
]
ReportJsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the whole report here.")]
MenusOpt = Annotated[int | None, typer.Option("--menus", min=0, help="Ask only the first N menus.")]
NoticesOpt = Annotated[
    int | None, typer.Option("--notices", min=0, help="Read only the first N notices.")
]
TimeoutOpt = Annotated[float, typer.Option("--timeout-s", min=0.1, help="Limit of one LM call, s.")]
MenusFileOpt = Annotated[
    Path | None, typer.Option(help="Recorded menus (default: the shipped menus.jsonl).")
]
NoticesFileOpt = Annotated[
    Path | None,
    typer.Option(help="Labelled notices (default: the shipped notices-bristol.jsonl)."),
]
KindReaderOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kind-reader",
        help="Who reads a notice's kind, repeatable (a row per LM and reader): auto (the "
        "encoder for a local LM), encoder, lm.",
    ),
]


def bench_llm(
    llm: LlmsOpt = None,
    json_path: ReportJsonOpt = None,
    menus: MenusOpt = None,
    notices: NoticesOpt = None,
    timeout_s: TimeoutOpt = 60.0,  # llmbench.DEFAULT_TIMEOUT_S
    menus_file: MenusFileOpt = None,
    notices_file: NoticesFileOpt = None,
    kind_reader: KindReaderOpt = None,
) -> None:
    """Each LM on the agents' own tasks, offline: menu choice (as shown and shuffled) on menus
    recorded from real runs, notice extraction on a labelled set, and what each call cost."""
    from edgeagents.experiments.llmbench import (
        SHUFFLE_SEED,
        LLMBenchReport,
        default_menus_path,
        default_notices_path,
        file_sha1,
        menus_by_agent,
    )

    specs = list(llm or DEFAULT_LLMS)
    readers = list(dict.fromkeys(kind_reader or ["auto"]))
    check_specs(specs, readers)
    check_writable(json_path, "--json")
    menus_path = menus_file or default_menus_path()
    notices_path = notices_file or default_notices_path()
    menu_set, notice_set, scenario = load_inputs(menus_path, notices_path, menus, notices)
    check_reachable_or_fail(specs)
    rows = bench_rows(specs, readers, menu_set, notice_set, scenario, timeout_s=timeout_s)
    report = LLMBenchReport(
        menus_file=str(menus_path), menus_sha1=file_sha1(menus_path),
        notices_file=str(notices_path), notices_sha1=file_sha1(notices_path),
        menus=len(menu_set), menus_by_agent=menus_by_agent(menu_set), notices=len(notice_set),
        shuffle_seed=SHUFFLE_SEED, timeout_s=timeout_s, rows=rows,
    )  # fmt: skip
    print_llm_tables(report, console)
    save_report(json_path, report)


def check_specs(specs: list[str], readers: list[str]) -> None:
    """Every --kind-reader is known and every --llm parses, before any file is read."""
    from edgeagents.agents.llm import LMConfigError, parse_llm_spec
    from edgeagents.agents.notices import KIND_READERS

    for r in readers:
        if r not in KIND_READERS:
            fail(f"--kind-reader {r!r}: choose {', '.join(KIND_READERS)}")
    try:
        for spec in specs:
            parse_llm_spec(spec)
    except LMConfigError as e:
        fail(str(e))


def load_inputs(
    menus_path: Path, notices_path: Path, menus: int | None, notices: int | None
) -> tuple[list[Menu], list[LabelledNotice], Scenario]:
    """The menus and labelled notices asked (every label read as an intent on bristol), or
    one line and exit 2."""
    from edgeagents.core.scenario import ScenarioError, load_scenario
    from edgeagents.experiments.llmbench import gold_intent, load_labelled_notices, load_menus

    for path, what in ((menus_path, "menus"), (notices_path, "notices")):
        if not path.is_file():
            fail(f"{what} file {path}: no such file")
    try:
        menu_set = load_menus(menus_path, menus)
        notice_set = load_labelled_notices(notices_path, notices)
        scenario = load_scenario("bristol")
        for item in notice_set:
            gold_intent(item, scenario)
    except (ValueError, ScenarioError) as e:
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    return menu_set, notice_set, scenario


def check_reachable_or_fail(specs: list[str]) -> None:
    """Each distinct LM answers before the first question is asked."""
    from edgeagents.agents.llm import LMConfigError, check_reachable

    try:
        for spec in dict.fromkeys(specs):
            check_reachable(spec)
    except LMConfigError as e:
        fail(str(e))
    except ImportError as e:
        fail(f"the LMs need their extra: pip install 'edgeagents[agents]' ({e.name} missing)")


def bench_rows(
    specs: list[str],
    readers: list[str],
    menu_set: list[Menu],
    notice_set: list[LabelledNotice],
    scenario: Scenario,
    *,
    timeout_s: float,
) -> list[LMRow]:
    """A row per LM and kind reader (one for an LM-less spec), under a progress bar."""
    from edgeagents.agents.llm import LMConfigError, create_chat_model
    from edgeagents.experiments.llmbench import SHUFFLE_SEED, bench_row

    rows = []
    per_row = 2 * len(menu_set) + len(notice_set)
    with progress_bar("items") as progress:
        for spec in specs:
            try:
                model = create_chat_model(spec, max_tokens=256, instance="bench")
            except LMConfigError as e:
                fail(str(e))
            for reader in readers if model is not None else ["auto"]:
                name = spec if reader == "auto" else f"{spec} kind={reader}"
                task = progress.add_task(name, total=per_row)
                row = bench_row(
                    name, model, menu_set, notice_set, scenario, seed=SHUFFLE_SEED,
                    timeout_s=timeout_s, kind_reader=reader,  # type: ignore[arg-type]
                    on_item=lambda t=task: progress.advance(t),
                )  # fmt: skip
                rows.append(row)
    return rows


def _pct(x: float | None) -> str:
    return number_cell(x, "{:.0%}")


def print_llm_tables(report: LLMBenchReport, console: Console) -> None:
    """Menu choice (all and per agent), notice extraction (accuracy, fields), cost."""
    from rich.table import Table

    by = ", ".join(f"{k} {n}" for k, n in report.menus_by_agent.items())
    t = Table(
        title=f"Menu choice: {report.menus} recorded menus ({by}), as shown (best first) and "
        f"shuffled (seed {report.shuffle_seed})",
        caption="agree = pick is the best option (or scores the same); regret = predicted "
        "score of the pick minus the best's, s, on planner and scheduler menus; invalid = no "
        "valid answer or a number not shown (the agents then take the first option shown); "
        "chance = a uniformly random pick.",
    )
    for col in ("LM", "agent", "menus", "agree", "agree shuffled", "chance shuffled",
                "regret s", "regret shuffled", "invalid", "invalid shuffled"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("LM", "agent") else "right")
    for row in report.rows:
        parts = [("all", row.menus), *row.menus.by_agent.items()]
        for kind, pair in parts:
            a, s = pair.as_shown, pair.shuffled
            t.add_row(
                row.llm if kind == "all" else "", kind, str(a.menus), _pct(a.agreement),
                _pct(s.agreement), _pct(s.chance_agreement), number_cell(a.mean_regret_s),
                number_cell(s.mean_regret_s), _pct(a.invalid_share), _pct(s.invalid_share),
            )  # fmt: skip
    console.print(t)

    kinds = sorted({k for row in report.rows for k in row.notices.by_kind})
    counts = report.rows[0].notices.by_kind_count if report.rows else {}
    t = Table(
        title=f"Notice extraction: {report.notices} labelled notices on {report.scenario}",
        caption="exact = same intent as the label (names as sets, times within 1 s, numbers "
        "within 1%); per kind = exact, by the label's kind; failed = the LM gave no valid "
        "answer. `none` reads only the strict form.",
    )
    for col in ("LM", "exact", "kind", *(f"{k} ({counts.get(k, 0)})" for k in kinds), "failed"):
        t.add_column(col, justify="left" if col == "LM" else "right")
    for row in report.rows:
        n = row.notices
        t.add_row(
            row.llm, _pct(n.accuracy), _pct(n.kind_accuracy),
            *(_pct(n.by_kind.get(k)) for k in kinds), _pct(n.failed_share),
        )  # fmt: skip
    console.print(t)

    fields = list(report.rows[0].notices.fields) if report.rows else []
    t = Table(
        title="Notice fields: precision / recall",
        caption="names: set elements over all notices; numbers: predicted when set on a "
        "non-none intent, correct within 1 s (times) or 1% (factor, bound).",
    )
    t.add_column("LM")
    for f in fields:
        t.add_column(f, justify="right")
    for row in report.rows:
        cells = [
            f"{_pct(c.precision)} / {_pct(c.recall)}"
            for c in (row.notices.fields[f] for f in fields)
        ]
        t.add_row(row.llm, *cells)
    console.print(t)

    t = Table(title="Cost per LM call (wall time on this machine: indicative)")
    for col in ("LM", "part", "calls", "mean s", "p95 s", "tokens/call", "row wall s"):
        t.add_column(col, justify="left" if col in ("LM", "part") else "right")
    for row in report.rows:
        for part, c in (("menus", row.menu_cost), ("notices", row.notice_cost)):
            t.add_row(
                row.llm if part == "menus" else "", part, str(c.calls), number_cell(c.mean_s),
                number_cell(c.p95_s), number_cell(c.mean_tokens, "{:.0f}"),
                f"{row.wall_s:.0f}" if part == "menus" else "",
            )  # fmt: skip
    console.print(t)
