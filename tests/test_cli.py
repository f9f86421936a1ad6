"""The CLI end to end: a short bench, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeagents", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip


def test_bench_end_to_end_writes_json_and_plots(tmp_path):
    out = tmp_path / "bench.json"
    plots = tmp_path / "plots"
    res = cli("bench", "--duration", "60", "--seed", "3", "--policies",
              "round-robin,least-loaded,greedy-autoscale", "--json", str(out),
              "--plots", str(plots))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "round-robin" in res.stdout and "lower-bound" in res.stdout
    data = json.loads(out.read_text())
    assert data["scenario"] == "bristol" and data["seed"] == 3
    assert data["sim_prompts_per_s"] > 0
    names = [r["policy"] for r in data["results"]]
    assert names == ["round-robin", "least-loaded", "greedy-autoscale", "lower-bound"]
    for r in data["results"]:
        for key in ("policy", "mean_latency_s", "p95_latency_s", "jain", "jain_rescaled",
                    "served", "refused", "lower_bound_ratio"):  # fmt: skip
            assert key in r
        assert r["served"] + r["refused"] == data["prompts"]
        assert 0.25 <= r["jain"] <= 1.0
    rr = data["results"][0]
    assert rr["ratio_to_round_robin"] == pytest.approx(1.0)
    assert data["results"][-1]["lower_bound_ratio"] == pytest.approx(1.0)
    assert all(r["lower_bound_ratio"] >= 1.0 for r in data["results"])
    assert {p.name for p in plots.iterdir()} == {
        "latency_cdf.png",
        "per_model_latency.png",
        "timeline.png",
    }


def test_same_seed_same_figures(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for p in (a, b):
        assert cli("bench", "--duration", "30", "--policies", "random,power-of-two",
                   "--json", str(p)).returncode == 0  # fmt: skip
    ra = [r["mean_latency_s"] for r in json.loads(a.read_text())["results"]]
    rb = [r["mean_latency_s"] for r in json.loads(b.read_text())["results"]]
    assert ra == rb


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["bench", "--scenario", "nowhere.yaml"], "no such scenario file"),
        (["bench", "--policies", "round-robin,psychic"], "unknown policy 'psychic'"),
        (["bench", "--trace", "missing.csv"], "missing.csv"),
        (["scenario", "validate", "BAD"], "links[0].b: unknown site 'nowhere'"),
        (["bench", "--scenario", "BAD"], "links[0].b: unknown site 'nowhere'"),
        (["bench", "--trace", "TRACE"], "line 3"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("{a: a, b: b,", "{a: a, b: nowhere,"))
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,10,5\n"
                     "2023-11-16 18:15:47.1,-3,5\n")  # fmt: skip
    args = [str(bad) if a == "BAD" else str(trace) if a == "TRACE" else a for a in args]
    out = tmp_path / "out.json"
    res = cli(*args, "--json", str(out)) if args[0] == "bench" else cli(*args)
    assert res.returncode == 2
    assert expected in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_scenario_show_and_validate():
    res = cli("scenario", "show", "bristol")
    assert res.returncode == 0 and "temple-meads" in res.stdout
    assert "stable-diffusion-1.5" in res.stdout


def test_scaling_reports_three_sizes(tmp_path):
    out = tmp_path / "s.json"
    res = cli("bench", "scaling", "--sizes", "20,40,80", "--json", str(out))
    assert res.returncode == 0, res.stderr
    points = json.loads(out.read_text())["points"]
    assert [p["duration_s"] for p in points] == [20, 40, 80]
    assert points[0]["prompts"] < points[1]["prompts"] < points[2]["prompts"]
