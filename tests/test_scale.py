"""`bench scale`: sane figures at tiny regions, growth ratios, the CLI and its bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgeagents.cli import app
from edgeagents.experiments.scale import region_scale


@pytest.fixture(scope="module")
def report():
    return region_scale([1, 7], seed=0, target_prompts=150, agent_ticks=1)


def test_rows_are_sane(report):
    assert [r.sites for r in report.rows] == [1, 7]
    for r in report.rows:
        assert r.prompts > 0 and r.route_calls >= r.prompts
        assert r.us_per_prompt > 0 and r.route_us_per_prompt > 0 and r.prompts_per_s > 0
        assert r.prompts_per_cpu_s > 0 and r.served + r.refused == r.prompts
        assert r.route_us_per_prompt < r.us_per_prompt < r.episode_us_per_prompt
        assert r.setup_s > 0 and r.sim_wall_s == pytest.approx(r.setup_s + r.us_per_prompt
                                                              * r.prompts / 1e6)  # fmt: skip
        assert r.peak_mib > 0
        a = r.agents
        assert a.skipped is None and len(a.ticks) == 1 and a.tick_s == 5.0
        tick = a.ticks[0]
        assert tick.planner_s is not None and tick.planner_s > 0  # the first tick plans
        assert tick.scheduler_s is not None and tick.deployers == r.sites
        assert 0 <= tick.decision_s <= tick.wall_s
        assert a.planner_s == tick.planner_s and a.tick_decision_p95_s == tick.decision_s
        assert a.tick_met is not None and a.planner_met is not None


def test_growth_and_targets(report):
    (g,) = report.growth
    a, b = report.rows
    assert (g.from_sites, g.to_sites, g.sites) == (1, 7, 7.0)
    assert g.us_per_prompt == pytest.approx(b.us_per_prompt / a.us_per_prompt)
    assert g.peak_mib == pytest.approx(b.peak_mib / a.peak_mib)
    assert g.planner_s == pytest.approx(b.agents.planner_s / a.agents.planner_s)
    assert report.targets["route"] is None and report.targets["sim"] is None  # no 1,000 row
    assert report.targets["tick"] is not None and report.targets["planner"] is not None


def test_no_agents_is_skipped_not_faked():
    r = region_scale([1], target_prompts=50, agents=False)
    assert r.rows[0].agents.skipped == "--no-agents" and r.rows[0].agents.ticks == []
    assert r.rows[0].agents.planner_s is None and r.targets["tick"] is None


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "scale.json"
    res = CliRunner().invoke(
        app, ["bench", "scale", "--sites", "1,7", "--prompts", "150", "--agent-ticks", "1",
              "--native-demand", "--json", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Region scale" in res.output and "growth 1 -> 7 sites" in res.output
    data = json.loads(out.read_text())
    assert [r["sites"] for r in data["rows"]] == [1, 7] and len(data["growth"]) == 1


@pytest.mark.parametrize(
    "args",
    [["--sites", "0,7"], ["--sites", "7,x"], ["--sites", ","], ["--json", "/nonexistent/x.json"]],
)
def test_cli_bad_input_is_one_line(args):
    res = CliRunner().invoke(app, ["bench", "scale", *args])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_a_city_of_several_regions_reports_its_epochs_and_ticks():
    r = region_scale([30], target_prompts=100, agent_ticks=3, epoch_ticks=2)
    a = r.rows[0].agents
    assert a.regions == 2 and a.epoch_ticks == 2 and len(a.ticks) == 3
    planned = [t.tick for t in a.ticks if t.planner_s is not None]
    assert planned == [0, 1], "the first tick plans, then every second tick's epoch"
    assert a.epoch_decision is not None and a.epoch_decision.max == a.planner_s
    assert a.tick_decision.p50 <= a.tick_decision.p95 <= a.tick_decision.max
    assert all(t.cpu_s > 0 for t in a.ticks) and a.peak_rss_mib > 0
    assert a.ticks[2].deployers < r.rows[0].sites, "a tick without news runs fewer deployers"
