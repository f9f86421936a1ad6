"""`edgeagents notices`: read operator notices as the agents do."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from edgeagents.cli.common import ScenarioOpt, console, fail, scenario_or_fail

notices_app = typer.Typer(
    help="Operator notices: read them as the agents do.", no_args_is_help=True
)


@notices_app.command("parse")
def notices_parse(
    text: Annotated[str, typer.Argument(help="The notice, as an operator wrote it.")],
    at: Annotated[float, typer.Option("--at", help="Publish time, simulated s.")] = 0.0,
    scenario: ScenarioOpt = "bristol",
    llm: Annotated[
        str,
        typer.Option(
            help="LM that reads free text: local, local:PATH.gguf, openai:MODEL, "
            "none (strict form only)."
        ),
    ] = "local",
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the intent as JSON only.")
    ] = False,
    kind_reader: Annotated[
        str,
        typer.Option(
            "--kind-reader",
            help="Who reads the kind: auto (the encoder for a local LM), encoder, lm.",
        ),
    ] = "auto",
) -> None:
    """Read one notice as the planner does: the intent as JSON (path: lm, repaired, strict or
    none)."""
    from edgeagents.agents.llm import LMConfigError, check_reachable, create_chat_model
    from edgeagents.agents.notices import KIND_READERS, extract_intent
    from edgeagents.core.notice import Notice, NoticeError, notice_from

    if kind_reader not in KIND_READERS:
        fail(f"--kind-reader {kind_reader!r}: choose {', '.join(KIND_READERS)}")
    sc = scenario_or_fail(scenario)
    try:
        notice: Notice = notice_from({"text": text, "publish_s": at}, "notice")
    except NoticeError as e:
        fail(str(e))
    try:
        from edgeagents.agents.lmconfig import resolve_lm_config

        cfg = resolve_lm_config(llm=llm).planner
        check_reachable(cfg)
        model = create_chat_model(cfg.model_copy(update={"max_tokens": 256}))
    except LMConfigError as e:
        fail(str(e))
    except ImportError as e:
        fail(f"reading free text needs the agents extra: pip install 'edgeagents[agents]' "
             f"({e.name} missing)")  # fmt: skip
    intent, cost = extract_intent(
        model,
        notice,
        sc,
        timeout_s=cfg.timeout_s,
        kind_reader=kind_reader,  # type: ignore[arg-type]
    )
    if intent.refusal is not None:
        fail(f"notice not usable ({intent.path}): {intent.refusal}")
    data = intent.model_dump(mode="json")
    if json_out:
        typer.echo(json.dumps(data))
        return
    console.print_json(json.dumps(data))
    console.print(
        f"strict form: {intent.strict()}  ({cost['wall_s']:.2f} s, {cost['tokens']} tokens"
        + (f", kind read by the {cost['kind_by']})" if cost["kind_by"] else ")"),
        highlight=False,
    )
