"""The package layout: what `lint-imports` does not check (its contracts are in pyproject.toml)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgeagents", "graphs", "memory", "serving")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def test_no_private_name_is_imported_from_another_module() -> None:
    """What another module needs is public: `from x import _y` across modules is a leak."""
    modules = _modules()
    leaks = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.module not in modules:
                continue
            if node.module == name:
                continue
            leaks += [f"{name} imports {node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]  # fmt: skip
    assert leaks == []


@pytest.mark.parametrize("layer", ["core", "sim", "policies", "agents", "experiments", "cli"])
def test_every_layer_says_what_it_is(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "edgeagents" / layer / "__init__.py").read_text()))
    assert doc and len(doc.split()) >= 10


def test_the_package_loads_its_names_on_first_use() -> None:
    code = (
        "import sys, edgeagents;"
        "before = sorted(m for m in sys.modules if m.startswith('edgeagents.'));"
        "from edgeagents import SimulatedCity, create_planner, compare;"
        "print(before, SimulatedCity.__module__, create_planner.__module__, compare.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        "[]", "edgeagents.sim.city", "edgeagents.agents.planner", "edgeagents.experiments.bench",
    ]  # fmt: skip


def test_an_unknown_name_is_an_attribute_error() -> None:
    import edgeagents

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        edgeagents.nothing_here  # noqa: B018


HEAVY = (
    "ray", "chromadb", "llama_cpp", "langchain_openai", "langchain_community", "langchain_core",
    "langgraph", "openai", "httpx", "torch", "fastapi", "transformers", "sentence_transformers",
)  # fmt: skip


@pytest.mark.parametrize(
    "modules",
    [
        "edgeagents, edgeagents.cli",
        "edgeagents.agents.planner, edgeagents.agents.scheduler, edgeagents.agents.deployer",
        "edgeagents.experiments.run, edgeagents.experiments.adaptation",
        "memory, memory.store",
        "serving",
    ],
)
def test_importing_loads_no_heavy_client(modules: str) -> None:
    """Ray, Chroma, torch and the LM clients load when a run asks for them, never at import."""
    code = (
        f"import sys, {modules};"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_memory_does_not_load_the_simulator() -> None:
    code = "import sys, memory.store; print('edgeagents.sim.city' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_cli_loads_the_serve_command_not_the_ray_city() -> None:
    """`serve` comes in through an entry point whose module holds only the command's options."""
    code = "import sys, edgeagents.cli; print(sorted(m for m in sys.modules if 'serving' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(eval(out.stdout)) <= {"serving", "serving.command", "serving.config"}
