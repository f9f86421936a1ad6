"""`edgeagents memory`: the experience store (chromadb and the embedding model load lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from edgeagents.cli.common import MEMORY_DEFAULT, check_writable, console, fail

memory_app = typer.Typer(
    help="Inspect and move the experience memory (Chroma).", no_args_is_help=True
)

MemoryPathOpt = Annotated[
    str,
    typer.Option(
        "--path",
        help="Store directory (env EDGEAGENTS_MEMORY_DIR overrides the default).",
        show_default=True,
    ),
]
MemoryEmbeddingOpt = Annotated[
    str,
    typer.Option(
        "--embedding",
        help="Which collection: features (what the agents write) or text (MiniLM embeddings).",
    ),
]


def memory_store(path: str, embedding: str = "features"):
    try:
        from memory.errors import MemoryStoreError
        from memory.store import ExperienceStore
    except ImportError as e:
        fail(f"the memory needs its extra: pip install 'edgeagents[memory]' ({e.name} missing)")
    if embedding not in ("text", "features"):
        fail(f"--embedding {embedding!r}: expected text or features")
    try:
        return ExperienceStore(path, embedding=embedding)  # type: ignore[arg-type]
    except MemoryStoreError as e:
        fail(str(e))


def memory_call(fn, *args):
    from memory.errors import MemoryStoreError

    try:
        return fn(*args)
    except MemoryStoreError as e:
        fail(str(e))


@memory_app.command("stats")
def memory_stats(
    path: MemoryPathOpt = MEMORY_DEFAULT, embedding: MemoryEmbeddingOpt = "features"
) -> None:
    """Count, scenarios and simulated time span of the stored experiences."""
    st = memory_call(memory_store(path, embedding).stats)
    span = st["time_span_s"]
    console.print(f"path: {st['path']}", highlight=False)
    console.print(f"collection: {st['collection']} ({st['embedding']} embedding)")
    console.print(f"experiences: {st['count']}")
    console.print(f"scenarios: {', '.join(st['scenarios']) or '-'}", highlight=False)
    console.print(f"time span: {f'{span[0]:g}-{span[1]:g} s' if span else '-'}")


@memory_app.command("search")
def memory_search(
    text: Annotated[str, typer.Argument(help="A situation, in words.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many to show.")] = 5,
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Past experiences for a situation in words. A text store ranks by meaning (MiniLM) and
    outcome; a features store lists those whose situation contains every word, best outcome
    first."""
    hits = memory_call(memory_store(path, embedding).search, text, k)
    if not hits:
        console.print("no experiences stored")
        return
    t = Table(title=f"top {len(hits)}")
    for col in ("score", "scenario", "t s", "situation", "action", "outcome"):
        t.add_column(col, overflow="fold")
    for exp, score in hits:
        t.add_row(
            f"{score:.3f}",
            exp.scenario,
            f"{exp.time_s:g}",
            exp.situation,
            exp.action,
            exp.outcome,
        )
    console.print(t)


@memory_app.command("export")
def memory_export(
    out: Annotated[Path, typer.Argument(help="JSON-lines file to write.")],
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Write every experience as JSON lines."""
    check_writable(out, "export")
    n = memory_call(memory_store(path, embedding).export, out)
    console.print(f"exported {n} experiences to {out}", highlight=False)


@memory_app.command("import")
def memory_import(
    src: Annotated[Path, typer.Argument(help="JSON-lines file written by export.")],
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Read experiences from JSON lines (same id: replaced, so importing twice is harmless)."""
    if not src.is_file():
        fail(f"import {src}: no such file")
    store = memory_store(path, embedding)
    n = memory_call(store.import_, src)
    console.print(f"imported {n} experiences; the store holds {store.count()}", highlight=False)


@memory_app.command("clear")
def memory_clear(
    yes: Annotated[bool, typer.Option("--yes", help="Really delete every experience.")] = False,
    path: MemoryPathOpt = MEMORY_DEFAULT,
    embedding: MemoryEmbeddingOpt = "features",
) -> None:
    """Delete every experience in the store."""
    store = memory_store(path, embedding)
    n = memory_call(store.count)
    if not yes:
        fail(f"memory clear would delete {n} experiences in {store.path}: add --yes")
    memory_call(store.clear)
    console.print(f"deleted {n} experiences from {store.path}", highlight=False)
