"""`edgeagents run` end to end, its bad input, and the offline guarantee."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("langgraph", reason="needs the `agents` extra")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeagents", *args], capture_output=True, text=True,
        timeout=600, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--llm", "gpt-4"], {}, "bad LM spec 'gpt-4'"),
        (["--scheduler-llm", "openai:"], {}, "bad LM spec 'openai:'"),
        (["--llm", "openai:qwen"], {"EDGEAGENTS_OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
         "unreachable"),
        (["--llm", "local:/nowhere/model.gguf"], {}, "model.gguf"),
        (["--lm-config", "/nowhere/lm.yaml"], {}, "cannot read LM config"),
    ],
)  # fmt: skip
def test_bad_llm_is_one_line_exit_2(tmp_path, args, env, expected):
    out = tmp_path / "run.json"
    res = cli("run", *args, "--duration", "10", "--json", str(out), env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    assert expected in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_run_without_lm_writes_results_log_and_plots(tmp_path):
    out, log, plots = tmp_path / "run.json", tmp_path / "decisions.jsonl", tmp_path / "plots"
    res = cli("run", "--llm", "none", "--duration", "60", "--baselines", "round-robin,greedy",
              "--json", str(out), "--log", str(log), "--plots", str(plots))  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert [r["policy"] for r in data["results"]] == ["round-robin", "greedy", "agents",
                                                      "lower-bound"]  # fmt: skip
    assert data["llm"] == {"planner": "none", "scheduler": "none", "deployer": "none"}
    costs = {c["agent"]: c for c in data["costs"]["agents"]}
    assert set(costs) == {"planner", "scheduler", "deployer"}
    for c in costs.values():
        assert c["lm_calls"] == 0
        assert sum(c["paths"].values()) == pytest.approx(1.0)
        assert set(c["paths"]) <= {"fallback", "tools"}
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert not (tmp_path / "run.decisions.jsonl").exists(), "an explicit --log wins"
    assert {x["agent"].split(":")[0] for x in lines} == {"planner", "scheduler", "deployer"}
    assert all(x["policy"] == "agents" for x in lines)
    assert len(list(plots.iterdir())) == 3


def test_a_fixed_decision_charge_makes_runs_repeat(tmp_path):
    """`--decision-s`: every decision applies that late, whatever the machine's load, so two runs
    of one seed agree to the digit; the report says what was charged."""
    reports = []
    for i in range(2):
        out = tmp_path / f"run{i}.json"
        res = cli("run", "--llm", "none", "--duration", "60", "--baselines", "greedy",
                  "--decision-s", "1.5", "--json", str(out))  # fmt: skip
        assert res.returncode == 0, res.stderr
        reports.append(json.loads(out.read_text()))
    assert reports[0]["charge_decision_time"] == 1.5
    agents = [next(r for r in rep["results"] if r["policy"] == "agents") for rep in reports]
    assert agents[0]["mean_latency_s"] == agents[1]["mean_latency_s"]
    assert agents[0]["served"] == agents[1]["served"]


def test_decision_s_with_no_charge_is_one_line_exit_2():
    res = cli("run", "--llm", "none", "--decision-s", "1", "--no-charge-decision-time")
    assert res.returncode == 2
    assert "--decision-s and --no-charge-decision-time" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.lm
def test_a_short_episode_with_the_real_local_lm(tmp_path):
    out = tmp_path / "run.json"
    res = cli("run", "--llm", "local", "--duration", "30", "--baselines", "round-robin",
              "--json", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    names = [r["policy"] for r in data["results"]]
    assert names == ["round-robin", "agents", "agents-none", "lower-bound"]
    agents = {c["agent"]: c for c in data["costs"]["agents"]}
    assert sum(c["lm_calls"] for c in agents.values()) > 0
    assert (tmp_path / "run.decisions.jsonl").read_text(), "the rationale log lands beside --json"
    assert agents["scheduler"]["tokens"] > 0 or agents["scheduler"]["paths"].get("tools")
    served = {r["policy"]: r["served"] + r["refused"] for r in data["results"]}
    assert len(set(served.values())) == 1, "every policy saw the same prompts"


def test_agents_run_with_sockets_disabled():
    from conftest import tiny_scenario
    from pytest_socket import disable_socket, enable_socket
    from scripted import ScriptedChatModel

    from edgeagents.experiments.driver import run_episode
    from edgeagents.policies import ROUTERS
    from edgeagents.sim.workload import generate_workload
    from graphs.controller import AgentsController

    sc = tiny_scenario(placement={"a": ["llm"]}, duration_s=20)
    disable_socket()
    try:
        model = ScriptedChatModel(replies=['{"choice": 1, "rationale": "offline"}'])
        run = run_episode(
            sc, generate_workload(sc, seed=0), (ROUTERS.create("weighted"), AgentsController(model))
        )
    finally:
        enable_socket()
    assert len(run.decisions) >= 4


def test_run_with_memory_stores_experience_and_says_where(tmp_path):
    pytest.importorskip("chromadb", reason="needs the `memory` extra")
    store = tmp_path / "mem"
    args = ["run", "--llm", "none", "--duration", "300", "--baselines", "greedy", "--memory",
            "--memory-path", str(store)]  # fmt: skip
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert f"experience memory: {store} (0 stored)" in first.stdout
    n = int(first.stdout.split("experience memory: ")[-1].split()[0])
    assert n >= 2, "one experience per planning epoch after the first"
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"({n} stored)" in again.stdout, "a new process reopens what the first stored"
    (tmp_path / "run.json").write_text("x")
    bad = cli("run", "--llm", "none", "--duration", "10", "--memory", "--memory-path",
              str(tmp_path / "run.json"))  # fmt: skip
    assert bad.returncode == 2 and "not a directory" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
