"""The scenario suite: its CLI end to end (one scenario failing), the suite file's one-line
errors, the text shapes against their cited statistics, and the one load rule."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TINY

from edgeagents.core.scenario import Scenario, ScenarioError, load_scenario
from edgeagents.core.text_shapes import TEXT_SHAPES
from edgeagents.experiments.suite import (
    SuiteEntry,
    SuiteError,
    at_load,
    build_scenario,
    geomean,
    load_suite,
    utilisation,
)
from edgeagents.sim.trace import load_trace
from edgeagents.sim.workload import generate_workload


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeagents", *args], capture_output=True, text=True, timeout=300
    )


def write_suite(tmp_path: Path, scenarios: list[dict]) -> Path:
    base = tmp_path / "tiny.yaml"
    base.write_text(TINY)
    for s in scenarios:
        s.setdefault("base", str(base))
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"reference": str(base), "scenarios": scenarios}))
    return path


def test_suite_cli_runs_two_tiny_scenarios_and_reports_the_failing_one(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, [
        {"name": "tiny-code", "text_shape": "azure-code"},
        {"name": "broken", "gpus": {"H200": "H900"}},
    ])  # fmt: skip
    out, plots = tmp_path / "suite.json", tmp_path / "plots"
    res = cli("bench", "suite", "--suite", str(suite), "--seeds", "0,1", "--duration-s", "20",
              "--json", str(out), "--plots", str(plots))  # fmt: skip
    assert res.returncode == 0, res.stderr
    failed_lines = [ln for ln in res.stderr.splitlines() if "failed" in ln]
    assert failed_lines == [failed_lines[0]]
    assert failed_lines[0].startswith("scenario broken failed: gpus: unknown GPU type 'H900'")
    assert "tiny-code" in res.stdout and "targets:" in res.stdout
    data = json.loads(out.read_text())
    assert data["failed"] == [{"scenario": "broken", "error": data["failed"][0]["error"]}]
    assert "H900" in data["failed"][0]["error"]
    [r] = data["scenarios"]
    assert r["scenario"] == "tiny-code" and [s["seed"] for s in r["seeds"]] == [0, 1]
    assert r["demand_factor"] > 0 and r["utilisation_before"] > 0
    per_seed = [s["agents_mean_s"] / s["round_robin_mean_s"] for s in r["seeds"]]
    assert r["agents_to_round_robin"] == pytest.approx(math.sqrt(per_seed[0] * per_seed[1]))
    for s in r["seeds"]:
        assert s["best_heuristic"] in data["baselines"]
        assert s["best_heuristic_mean_s"] <= s["round_robin_mean_s"]
        assert s["agents_to_lower_bound"] >= 1.0
    assert data["summary"]["agents_to_round_robin"] == pytest.approx(r["agents_to_round_robin"])
    assert set(data["targets"]) == {"to_round_robin", "below_best", "to_lower_bound", "jain"}
    assert (plots / "suite-ratios.png").stat().st_size > 0


def test_suite_cli_exits_1_when_every_scenario_fails(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, [{"name": "broken", "mix": {"text-to-image": 0.5}}])
    out = tmp_path / "suite.json"
    res = cli("bench", "suite", "--suite", str(suite), "--seeds", "0", "--duration-s", "5",
              "--json", str(out))  # fmt: skip
    assert res.returncode == 1
    assert "scenario broken failed: mix: text-to-image is no model or kind" in res.stderr
    data = json.loads(out.read_text())
    assert data["scenarios"] == [] and data["summary"] is None
    assert [f["scenario"] for f in data["failed"]] == ["broken"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"name": "a", "gpu": {"L4": "A10"}}, "scenarios[0] (a).gpu: unknown field"),
        ({"name": "a", "text_shape": "tweets"}, "scenarios[0] (a): text_shape: unknown 'tweets'"),
        ({"name": "a", "mix": {"llm": 0.7, "vlm": 0.6}}, "mix: shares are >= 0 and sum to at"),
        ({"name": "a", "base": "bristol", "region": {"sites": 3}}, "base and region: give one"),
        ({"name": "bad name!"}, "scenarios[0] (bad name!).name: String should match"),
    ],
)
def test_bad_suite_entries_are_one_line_naming_the_entry(
    tmp_path: Path, entry: dict, expected: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"scenarios": [entry]}))
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_duplicate_names_and_unreadable_files_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"scenarios": [{"name": "a"}, {"name": "a"}]}))
    with pytest.raises(SuiteError, match=r"scenarios\[1\]\.name: duplicate name 'a'"):
        load_suite(path)
    with pytest.raises(SuiteError, match="cannot read suite file"):
        load_suite(tmp_path / "missing.yaml")
    path.write_text("scenarios: [a, {")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(path)


def test_a_missing_reference_city_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"reference": "nowhere.yaml", "scenarios": [{"name": "a"}]}))
    res = cli("bench", "suite", "--suite", str(path))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "reference: nowhere.yaml: no such scenario file" in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--suite", "MISSING.yaml"],
        ["--scenarios", "nowhere"],
        ["--seeds", "0,x"],
        ["--seeds", "1,1"],
    ],
)
def test_bad_suite_options_exit_2_with_one_line(args: list[str]) -> None:
    res = cli("bench", "suite", *args)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "error:" in res.stderr


def test_shipped_suite_has_the_issue_scenarios_and_each_builds() -> None:
    suite = load_suite()
    assert len(suite.scenarios) >= 8
    built = {e.name: build_scenario(e) for e in suite.scenarios}
    assert len(built["large-city"].sites) == 100
    shapes = {e.text_shape for e in suite.scenarios}
    assert {"azure-code", "sharegpt-chat"} <= shapes
    for sc in built.values():
        replicas = {m for placed in sc.placement.values() for m in placed}
        assert replicas == set(sc.model_names), sc.name


def test_gpu_swap_replaces_types_and_mix_sets_shares() -> None:
    poor = build_scenario(SuiteEntry(name="p", gpus={"A100-80GB": "L4", "L40S": "A10"}))
    types = {g.type for s in poor.sites for g in s.gpus}
    assert "A100-80GB" not in types and "L40S" not in types
    mixed = build_scenario(SuiteEntry(name="m", mix={"text-to-image": 0.4}))
    rates = {d.model: d.arrivals.rate_per_s for d in mixed.workload.demands}
    total = sum(rates.values())
    assert total == pytest.approx(8.1)
    assert rates["stable-diffusion-1.5"] / total == pytest.approx(0.4)
    assert rates["llama-3.1-8b"] / rates["whisper-large-v3"] == pytest.approx(5.4)


def test_load_rule_scales_to_the_reference_utilisation() -> None:
    bristol = load_scenario("bristol")
    target = utilisation(bristol)
    same, factor, _ = at_load(bristol, target)
    assert factor == 1.0 and same is bristol
    code = build_scenario(SuiteEntry(name="c", text_shape="azure-code"))
    scaled, factor, before = at_load(code, target)
    assert before < target and factor > 1.0
    assert utilisation(scaled) == pytest.approx(target, rel=0.01)  # another size sample


# The statistics each shape cites (edgeagents/data/PROVENANCE.md), column by column:
# (input median, input mean or p90, output median, output mean or p90); None: not published.
CITED = {
    "azure-code": ("mean", 1469, 2048, 13, 28),
    "azure-conv": ("mean", 1020, 1155, 129, 211),
    "sharegpt-chat": ("mean", None, 650, None, 348.45),
    "burstgpt-chat": ("p90", 481, 1664, 229, 543),
}


@pytest.mark.parametrize("name", sorted(TEXT_SHAPES))
def test_text_shapes_match_their_cited_statistics(name: str) -> None:
    stat, in_med, in_x, out_med, out_x = CITED[name]
    tokens_in, tokens_out = TEXT_SHAPES[name].draw(np.random.default_rng(7), 400_000)
    for col, med, x in ((tokens_in, in_med, in_x), (tokens_out, out_med, out_x)):
        if med is not None:
            assert np.median(col) == pytest.approx(med, rel=0.03, abs=1)
        spread = col.mean() if stat == "mean" else np.percentile(col, 90)
        assert spread == pytest.approx(x, rel=0.03)


def test_conversation_shape_agrees_with_the_shipped_trace() -> None:
    trace = load_trace("azure-conv")
    tokens_in, tokens_out = TEXT_SHAPES["azure-conv"].draw(np.random.default_rng(1), 200_000)
    assert np.median(trace.input_tokens) == 1020 and np.median(trace.output_tokens) == 129
    assert tokens_in.mean() == pytest.approx(trace.input_tokens.mean(), rel=0.03)
    assert tokens_out.mean() == pytest.approx(trace.output_tokens.mean(), rel=0.03)


def shaped(shape: str = "azure-code") -> Scenario:
    return build_scenario(SuiteEntry(name="s", text_shape=shape))


def test_shaped_workload_is_reproducible_from_its_seed() -> None:
    sc = shaped()
    a, b = (generate_workload(sc, duration_s=60, seed=3) for _ in range(2))
    c = generate_workload(sc, duration_s=60, seed=4)
    llm = a.model == a.model_names.index("llama-3.1-8b")
    assert np.array_equal(a.input_tokens, b.input_tokens)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    llm_c = c.model == c.model_names.index("llama-3.1-8b")
    assert not np.array_equal(a.input_tokens[llm][:50], c.input_tokens[llm_c][:50])
    assert np.median(a.input_tokens[llm]) > 1000 and np.median(a.output_tokens[llm]) < 40


@pytest.mark.parametrize(
    ("demand", "expected"),
    [
        ({"sizes": {"shape": "tweets"}}, "unknown text shape 'tweets'"),
        ({"sizes": {"shape": "azure-code"}, "trace": "azure-conv"}, "give one of them"),
    ],
)
def test_bad_shapes_in_a_scenario_are_one_line(demand: dict, expected: str) -> None:
    data = yaml.safe_load(TINY)
    data["workload"]["demands"][0].update(demand)
    with pytest.raises(ScenarioError) as e:
        Scenario.from_yaml(yaml.safe_dump(data))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_a_shape_on_a_non_text_model_is_refused() -> None:
    data = yaml.safe_load(TINY)
    data["models"][0]["kind"] = "vlm"
    data["models"][0]["encoder_profile"] = "clip-vit-l-14-336"
    data["workload"]["demands"][0]["sizes"] = {"shape": "azure-code"}
    with pytest.raises(ScenarioError, match=r"sizes\.shape: for llm models, not vlm"):
        Scenario.from_yaml(yaml.safe_dump(data))


def test_geomean_needs_every_value() -> None:
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert geomean([2.0, None]) is None and geomean([]) is None
