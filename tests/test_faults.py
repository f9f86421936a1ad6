"""`bench faults`: every fault case on a tiny city loses no prompt, the LM rows end on the
fallback with every LM call failed, the memory row warns and goes on; the CLI end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("langgraph", reason="needs the `agents` extra")

from conftest import TINY, tiny_scenario

from edgeagents.experiments.faults import (
    FakeLMServer,
    FaultsReport,
    FaultsSettings,
    fault_window,
    run_faults,
)
from edgeagents.experiments.faults.metrics import recovery_s

CITY = {
    "placement": {"a": ["llm"], "c": ["llm"]},
    "control": {"tick_s": 5, "planning_epoch_s": 15, "drain_limit_s": 60},
    "workload": {"demands": [{"model": "llm", "arrivals": {"rate_per_s": 10.0}}]},
    "duration_s": 60,
}
SC = tiny_scenario(**CITY)
LM_CASES = ["lm-down", "lm-slow", "lm-garbage-text", "lm-garbage-json"]


def settings(duration: float = 60.0, scenario: str = "tiny") -> FaultsSettings:
    start, end = fault_window(SC, duration)
    return FaultsSettings(
        scenario=scenario, duration_s=duration, fault_start_s=start, fault_end_s=end,
        recovery_window_s=10.0, recovery_step_s=SC.control.tick_s, lm_timeout_s=0.3,
        slow_delay_s=1.5,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> FaultsReport:
    """The cases that need no socket, in one campaign; the city is also a file, for the
    `edgeagents run` subprocesses of the kill-and-resume row."""
    cases = ["no-fault", "site-crash", "link-cut", "overload", "memory-unreadable",
             "kill-and-resume"]  # fmt: skip
    path = tiny_file(tmp_path_factory.mktemp("city"))
    return run_faults(SC, settings(scenario=path), cases)


def rows(report: FaultsReport) -> dict:
    return {r.case: r for r in report.rows}


def test_every_prompt_is_served_or_refused_in_every_case(report):
    for row in report.rows:
        if row.status == "not implemented":
            continue
        assert row.status == "ok", (row.case, row.problems)
        for fig in (row.agents, row.baseline):
            assert fig.lost == 0 and fig.served + fig.refused == fig.offered, row.case
            assert sum(fig.refused_by_reason.values()) == fig.refused
            assert fig.reached_end, row.case
    by = rows(report)
    assert by["site-crash"].agents.refused_by_reason.get("site_failed", 0) > 0
    assert "site a down 20-40 s" in by["site-crash"].fault
    assert "link a-b" in by["link-cut"].fault
    overload = by["overload"].agents
    assert overload.offered > by["no-fault"].agents.offered * 1.5, "x3 inside a third of the run"
    assert by["overload"].baseline.offered == overload.offered, "one workload for both"
    assert overload.refused_by_reason.get("queue_full", 0) > 0, "the bounded queues refuse"


def test_memory_row_warns_goes_on_and_the_store_reopens(report):
    row = rows(report)["memory-unreadable"]
    m = row.memory
    assert row.status == "ok", row.problems
    assert m.warnings >= 1 and "experience memory off" in m.first_warning
    assert "not a database" in m.first_warning, "the disk really went bad under the store"
    assert row.agents.reached_end and row.agents.lost == 0
    assert m.stored_after_fault >= 1, "the store came back when the disk did"
    assert m.reopens and m.reopened_count >= m.stored_before


def test_kill_and_resume_row_kills_mid_episode_and_repeats_the_uninterrupted_run(report):
    row = rows(report)["kill-and-resume"]
    p = row.process
    assert row.status == "ok", row.problems
    assert p.killed_exit_code == -signal.SIGKILL, "the run was killed, not finished"
    assert p.target_cycles <= p.killed_after_cycles < row.agents.ticks, "killed mid-episode"
    assert p.checkpoint_opens and p.resume_exit_code == 0
    assert p.same_figures and p.differences == []
    offered = rows(report)["no-fault"].agents.offered
    assert (
        p.prompts
        == p.uninterrupted_prompts
        == dict.fromkeys(("greedy-autoscale", "agents", "lower-bound"), offered)
    )
    assert p.resumed_at_s == row.window_s[0] and p.replay_s >= 0
    assert row.agents.offered == row.agents.served + row.agents.refused == offered
    assert row.agents.served == rows(report)["no-fault"].agents.served, "the same episode"


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_lm_rows_fall_back_on_every_call_and_run_to_the_end():
    report = run_faults(SC, settings(), ["no-fault", *LM_CASES])
    by = rows(report)
    for case in LM_CASES:
        row = by[case]
        paths = row.agents.paths
        assert row.status == "ok", (case, row.problems)
        assert paths.lm_calls > 0 and paths.lm_failed == paths.lm_calls, case
        assert paths.lm_answered == 0 and paths.by_path.get("lm", 0) == 0, case
        assert row.agents.reached_end and row.agents.lost == 0, case
        assert row.window_s == (0.0, 60.0)
        if case != "lm-down":
            assert row.lm.requests > 0, "the calls reached the local server"
        # every call fell back, so the agents did what they do without an LM
        assert row.agents.served == by["no-fault"].agents.served
        assert row.agents.mean_during_s == by[LM_CASES[0]].agents.mean_during_s
    assert not [t for t in threading.enumerate() if t.name == "fake-lm-server"]


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_fake_server_lists_its_model_answers_late_and_stops():
    with FakeLMServer("slow", delay_s=0.4) as server:
        with urllib.request.urlopen(server.base_url + "/models", timeout=5) as r:
            assert json.load(r)["data"][0]["id"] == "fake"
        body = json.dumps({"model": "fake", "messages": []}).encode()
        req = urllib.request.Request(server.base_url + "/chat/completions", data=body)
        with urllib.request.urlopen(req, timeout=5) as r:
            assert "choices" in json.load(r)
        assert server.requests["/v1/chat/completions"] == 1
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_recovery_is_the_first_window_back_within_ten_percent():
    arrival = np.arange(0.0, 100.0, 1.0)
    lat = np.where(arrival < 30, 1.0, np.where(arrival < 60, 5.0, 1.05))
    kw = {"before_s": 1.0, "horizon_s": 100.0, "window_s": 10.0, "step_s": 5.0}
    assert recovery_s(arrival, lat, end_s=50.0, **kw) == 10.0
    assert recovery_s(arrival, np.full(100, 5.0), end_s=50.0, **kw) == "never"
    assert recovery_s(arrival, lat, end_s=95.0, **kw) is None, "no room after the window"
    assert recovery_s(arrival, lat, end_s=50.0, **{**kw, "before_s": None}) is None


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "edgeagents", "bench", "faults", *args],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip


def tiny_file(tmp_path: Path, **overrides: object) -> str:
    data = {**yaml.safe_load(TINY), **CITY, **overrides}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_cli_end_to_end_writes_the_report(tmp_path):
    out = tmp_path / "faults.json"
    res = cli("--scenario", tiny_file(tmp_path), "--duration", "30", "--json", str(out),
              "--cases", "site-crash,lm-garbage-json,kill-and-resume")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    report = FaultsReport.model_validate_json(out.read_text())
    assert [r.case for r in report.rows] == ["site-crash", "lm-garbage-json", "kill-and-resume"]
    assert [r.status for r in report.rows] == ["ok", "ok", "ok"], res.stdout
    assert report.rows[2].process.same_figures
    assert "greedy-autoscale" in res.stdout and "figures the same as" in res.stdout


def test_cli_exits_1_when_a_case_fails(tmp_path):
    """No planning epoch inside a 30-s run: the store is never used while broken, so the
    memory row cannot show the fault and says so."""
    path = tiny_file(tmp_path, control={"tick_s": 5, "planning_epoch_s": 120})
    res = cli("--scenario", path, "--duration", "30", "--cases", "memory-unreadable")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no warning" in res.stdout and "memory-unreadable" in res.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--target", "k8s"], "--target 'k8s': expected one of sim, ray"),
        (["--target", "nonsense"], "--target 'nonsense'"),
        (["--rate", "2"], "--rate 2: applies to --target ray only"),
        (["--target", "ray", "--rate", "0"], "--rate 0"),
        (["--target", "ray", "--cases", "node-removal,meteor"], "(--target ray)"),
        (["--cases", "node-removal"], "(--target sim)"),
        (["--duration", "0"], "--duration 0"),
        (["--duration", "-5"], "--duration -5"),
        (["--json", "/nowhere/at/all/faults.json"], "does not exist"),
        (["--cases", "site-crash,meteor"], "--cases"),
        (["--seed", "-1"], "--seed -1"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, expected):
    res = cli(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert expected in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
