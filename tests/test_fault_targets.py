"""`bench faults`' fault targets without Ray: the registry finds each by name (the Ray one by
import path only), the Ray target's city is the scenario cut to its text models on a few
sites, and its rows that cannot run on Ray say why without starting anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import get_args

import pytest

from edgeagents.core.scenario import load_scenario
from edgeagents.experiments.faults import (
    CASES,
    FAULT_TARGETS,
    FaultsReport,
    TargetName,
    fault_target,
)


def test_the_registry_knows_sim_and_ray_by_name() -> None:
    assert tuple(FAULT_TARGETS) == get_args(TargetName)
    sim = fault_target("sim")
    assert (sim.name, sim.cases, sim.not_implemented) == ("sim", CASES, {})
    with pytest.raises(ValueError, match="expected one of sim, ray"):
        fault_target("nonsense")


def test_the_core_names_the_ray_target_without_importing_it() -> None:
    code = (
        "import sys; import edgeagents.experiments.faults as f; "
        "print('serving.faults' in sys.modules, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_ray_target_lists_every_case_and_says_why_some_cannot_run() -> None:
    pytest.importorskip("ray.serve")
    pytest.importorskip("langgraph")
    ray = fault_target("ray")
    assert ray.name == "ray"
    assert {"node-removal", "replica-crash", "site-crash", "overload"} <= set(ray.cases)
    assert set(ray.cases) >= set(CASES)  # every sim case is a row: run, or said why not
    assert set(ray.not_implemented) == {"link-cut", "memory-unreadable", "kill-and-resume"}
    assert all(fault and why for fault, why in ray.not_implemented.values())


def test_the_ray_city_is_the_scenario_cut_to_its_text_models() -> None:
    from serving.faults.cases import ray_city, victim_site

    city = ray_city(load_scenario("bristol"), 3)
    assert city.site_names == ["temple-meads", "harbourside", "cabot-circus"]
    assert city.model_names == ["llama-3.1-8b"]
    assert city.placement == {s: ["llama-3.1-8b"] for s in city.site_names}
    assert {c.site for c in city.cells} == set(city.site_names)
    assert [d.model for d in city.workload.demands] == ["llama-3.1-8b"]
    assert victim_site(city) == "harbourside"  # a worker node, never the head's site
    with pytest.raises(ValueError, match="at least 2 sites"):
        ray_city(load_scenario("bristol"), 1)


def test_rows_that_cannot_run_on_ray_are_listed_with_the_reason(tmp_path) -> None:
    pytest.importorskip("ray.serve")
    pytest.importorskip("langgraph")
    path = tmp_path / "faults.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    args = ["--target", "ray", "--cases", "link-cut,kill-and-resume", "--json", str(path)]
    res = subprocess.run(
        [sys.executable, "-m", "edgeagents", "bench", "faults", *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = FaultsReport.model_validate(json.loads(path.read_text()))
    assert report.settings.target == "ray" and report.settings.ray is not None
    assert [(r.case, r.status) for r in report.rows] == [
        ("link-cut", "not implemented"),
        ("kill-and-resume", "not implemented"),
    ]
    assert "link-cut: not implemented: a backhaul link down: the Ray city's backhaul" in res.stdout
