"""Memory on sharp shifts: detection, the moves to a remembered placement, the recall that
re-plans early (scripted chat model for the graph wiring), and `edgeagents bench adaptation`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("chromadb", reason="needs the `memory` extra")
pytest.importorskip("langgraph", reason="needs the `agents` extra")

import yaml
from conftest import TINY, tiny_scenario
from scripted import ScriptedChatModel

from edgeagents.agents.plan_search import placement_actions, search_plans
from edgeagents.agents.tools import placement_of
from edgeagents.agents.twin import PEAK_DECAY, WhatIf, forecast_demand
from edgeagents.core.state import Forecast
from edgeagents.experiments.adaptation import (
    VariantResult,
    compare_targets,
    has_transient,
    planner_lm_picks,
    recovery_epochs,
    score_recovery_to_best,
)
from edgeagents.experiments.driver import run_episode
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.workload import generate_workload
from graphs.controller import AgentsController
from memory.experience import detect_shifts, shift_persists
from memory.store import ExperienceStore

ROOT = Path(__file__).resolve().parents[1]
MARK = "Past situations like this one"
SHIFTED = dict(
    placement={"a": ["llm"], "b": ["llm"]},
    control={"tick_s": 5, "planning_epoch_s": 15, "drain_limit_s": 30},
    duration_s=75,
    workload={"demands": [{"model": "llm", "arrivals": {"rate_per_s": 30.0}}]},
    events=[{"at_s": 20, "kind": "site_down", "site": "b"}],
)
SURGED = {
    **{k: v for k, v in SHIFTED.items() if k != "events"},
    "workload": {
        "demands": [{"model": "llm", "arrivals": {"rate_per_s": 15.0}}],
        "shifts": [{"at_s": 20, "model": "llm", "factor": 3.0}],
    },
}
SHORT_WINDOW = {**SHIFTED, "control": {**SHIFTED["control"], "window_s": 10}}
"""Full telemetry windows before the site fails at 20 s."""


def observed(scenario, t: float = 10.0):
    city = SimulatedCity(scenario, generate_workload(scenario, seed=1), ROUTERS.create("greedy"))
    city.advance(t)
    return city.observe()


def test_detect_shifts() -> None:
    sc = tiny_scenario(**SHORT_WINDOW)
    t = observed(sc, t=15.0)
    assert t.time_s >= t.window_s
    steady = forecast_demand(t)
    assert detect_shifts(t, steady) == []
    half = Forecast(
        rates_per_s={m: r / 2 for m, r in steady.rates_per_s.items()},
        cell_weights=steady.cell_weights,
        peak_rates_per_s={m: r / 2 for m, r in steady.rates_per_s.items()},
    )
    assert detect_shifts(t, half) == ["surge llm"]
    elsewhere = steady.model_copy(update={"cell_weights": {"gone": 1.0}})
    assert detect_shifts(t, elsewhere) == ["demand moved to a"]
    down = t.model_copy(
        update={"sites": [s.model_copy(update={"up": s.site != "b"}) for s in t.sites]}
    )
    assert detect_shifts(down, steady) == ["site b down"]
    assert detect_shifts(down, None) == ["site b down"]


def test_bursts_and_partial_windows_are_not_surges() -> None:
    sc = tiny_scenario(**SHORT_WINDOW)
    t = observed(sc, t=15.0)
    rate = forecast_demand(t).rates_per_s["llm"]
    low = Forecast(rates_per_s={"llm": rate / 2}, cell_weights={})
    assert detect_shifts(t, low) == [], "no peak known yet"
    calm = low.model_copy(update={"peak_rates_per_s": {"llm": rate / 2}})
    assert detect_shifts(t, calm) == ["surge llm"]
    bursty = low.model_copy(update={"peak_rates_per_s": {"llm": rate}})
    assert detect_shifts(t, bursty) == [], "no higher than its usual bursts"
    early = observed(sc, t=5.0)
    assert early.time_s < early.window_s
    assert detect_shifts(early, calm) == []


def test_a_shift_persists_only_while_it_is_still_seen() -> None:
    sc = tiny_scenario(**SHORT_WINDOW)
    t = observed(sc, t=15.0)
    steady = forecast_demand(t)
    half = steady.model_copy(
        update={"rates_per_s": {m: r / 2 for m, r in steady.rates_per_s.items()}}
    )
    assert shift_persists("surge llm", t, half), "still twice its old rate"
    assert not shift_persists("surge llm", t, steady), "back to its old rate: a burst"
    lingering = steady.model_copy(
        update={"rates_per_s": {m: r / 1.3 for m, r in steady.rates_per_s.items()}}
    )
    assert shift_persists("surge llm", t, lingering), "1.3x: a real surge, detected late"
    fading = steady.model_copy(
        update={"rates_per_s": {m: r / 1.1 for m, r in steady.rates_per_s.items()}}
    )
    assert not shift_persists("surge llm", t, fading), "1.1x: a burst that is ending"
    assert not shift_persists("surge llm", t, None)
    elsewhere = steady.model_copy(update={"cell_weights": {"gone": 1.0}})
    assert shift_persists("demand moved to a", t, elsewhere)
    assert not shift_persists("demand moved to a", t, steady)
    down = t.model_copy(
        update={"sites": [s.model_copy(update={"up": s.site != "b"}) for s in t.sites]}
    )
    assert shift_persists("site b down", down, None)
    assert not shift_persists("site b down", t, steady), "b is back"


def test_only_a_confirmed_shift_is_stored_as_one(tmp_path: Path) -> None:
    """The watch's first write is its confirmation: a burst the detector took for a surge,
    gone by the next epoch, leaves no `shift` experience to be recalled later."""
    from graphs.memory_nodes import create_recall

    sc = tiny_scenario(**SHORT_WINDOW)
    t = observed(sc, t=15.0)
    steady = forecast_demand(t)
    config = {"configurable": {"scenario": sc, "thread_id": "t"}}
    stored = {}
    for label, before in (("burst", steady), ("surge", steady.model_copy(
        update={"rates_per_s": {m: r / 2 for m, r in steady.rates_per_s.items()}}
    ))):  # fmt: skip
        store = ExperienceStore(tmp_path / label, embedding="features")
        recall = create_recall(store)
        state = {"telemetry": t, "cycle": 1, "forecast": before, "shift": "surge llm"}
        watch = recall(state, config)["shift_watch"]
        assert watch["before"]["rates_per_s"] == before.rates_per_s
        later = {"telemetry": t, "cycle": 2, "forecast": before, "run_planner": True,
                 "shift_watch": watch}  # fmt: skip
        out = recall(later, config)
        stored[label] = [e.shift for e in store.all() if e.kind == "shift"]
        assert ("shift_watch" in out and out["shift_watch"] is None) == (label == "burst")
    assert stored == {"burst": [], "surge": ["surge llm"]}


def test_a_remembered_surge_raises_the_forecast_handed_on() -> None:
    """The planner plans on the demand that followed the remembered surge, and hands that
    forecast on: smoothing from the observed rates alone lags a real surge."""
    from edgeagents.agents.planner import create_planner

    sc = tiny_scenario(**SHORT_WINDOW)
    t = observed(sc, t=15.0)
    config = {"configurable": {"scenario": sc}}
    remembered = {"shift": "surge llm", "demand": {"llm": 500.0}, "placement": {}}
    model = ScriptedChatModel(replies=['{"choice": 1, "rationale": "scripted"}'])
    state = {"telemetry": t, "cycle": 1, "recalled_plan": remembered}
    out = create_planner(model, scenario=sc, search_budget_s=30.0)(state, config)
    assert out["forecast"].rates_per_s["llm"] == 500.0
    shown = prompts(model, "Planner")
    assert shown and "llm 500.00" in shown[0], "the plan was made on the remembered demand"
    calm = create_planner(None, scenario=sc)({**state, "recalled_plan": None}, config)
    assert calm["forecast"].rates_per_s == forecast_demand(t).rates_per_s


def test_forecast_keeps_a_decaying_peak_from_full_windows() -> None:
    sc = tiny_scenario(**SHORT_WINDOW)
    early, full = observed(sc, t=5.0), observed(sc, t=15.0)
    assert forecast_demand(early).peak_rates_per_s == {}
    first = forecast_demand(full)
    assert first.peak_rates_per_s["llm"] == pytest.approx(full.models[0].arrivals_per_s)
    high = first.model_copy(update={"peak_rates_per_s": {"llm": 10 * first.rates_per_s["llm"]}})
    again = forecast_demand(full, high)
    assert again.peak_rates_per_s["llm"] == pytest.approx(
        PEAK_DECAY * 10 * first.rates_per_s["llm"]
    )


def test_a_remembered_placement_predicted_worse_than_holding_is_not_offered() -> None:
    sc = tiny_scenario(**SHIFTED)
    t = observed(sc)
    whatif = WhatIf(sc, forecast_demand(t), t, horizon_s=30.0)
    empty = search_plans(whatif, t, sc, remembered={"a": [], "b": []})
    assert not any(c.name.startswith("remembered") for c in empty), "unloads everything"
    more = search_plans(whatif, t, sc, remembered={"a": ["llm"], "b": ["llm"], "c": ["llm"]})
    offered = [c for c in more if c.name.startswith("remembered")]
    hold = next(c for c in more if c.name == "hold")
    assert all(c.prediction.score() <= hold.prediction.score() for c in offered)


def test_placement_actions_reach_the_target_where_they_can() -> None:
    sc = tiny_scenario(**SHIFTED)
    t = observed(sc)
    assert placement_of(t) == {"a": ["llm"], "b": ["llm"], "c": []}
    moves = placement_actions({"a": [], "b": ["llm", "llm"], "zz": ["llm"]}, t, sc)
    assert [(a.op, a.site) for a in moves] == [("unload", "a"), ("load", "b")]
    assert moves[1].gpu_index == 0, "the second llm fits beside the first on b's H200"
    down = t.model_copy(
        update={"sites": [s.model_copy(update={"up": s.site != "b"}) for s in t.sites]}
    )
    assert placement_actions({"b": ["llm", "llm"]}, down, sc) == [], "b is down"
    assert placement_actions(placement_of(t), t, sc) == [], "already there"


def test_recovery_epochs() -> None:
    means = [5, 5, 5, 20, 15, 6, 5.2, 5, 5, 5, 5, 5.1]
    assert recovery_epochs(means, 3) == (3, 5.0)
    assert recovery_epochs([5, 5, 5, 5, 5], 2) == (0, 5.0)
    late = [5, 5, 8, 14, 16, 9, 9, 9]  # the backlog builds after the shift, then clears
    assert recovery_epochs(late, 2) == (3, 9.0)
    bump = [5, 5, 20, 9, 9, 12, 9, 9, 9]  # a later bump is not the shift's
    assert recovery_epochs(bump, 2) == (1, 9.0)
    assert recovery_epochs([5, None, 30, None, 5, 5], 2) == (2, 5.0)
    assert recovery_epochs([5, 5, None, None], 2) == (None, None)
    climbing = [5, 5, 30, 20, 40, 60, 80, 100, 120, 130]  # never back: not "recovered at once"
    assert recovery_epochs(climbing, 2) == (None, 125.0)


def test_recovery_to_the_best_steady_state() -> None:
    """A variant that settles high fast has not recovered: against the best level any
    variant settled at, the one that came down further is the one that recovered."""

    def row(memory: str, curve: list[float]) -> VariantResult:
        rec, steady = recovery_epochs(curve, 2)
        return VariantResult(
            memory=memory, llm="none", shift="site-failure", seeds=[0], recovery_epochs=rec,
            recovery_epochs_by_seed=[rec], post_shift_mean_latency_s=steady,
            post_shift_mean_latency_s_by_seed=[steady], jain=None, steady_state_s=steady,
            refused_after_shift=0, early_replans=0, stored_experiences=0, planner_paths={},
            epoch_mean_latency_s=curve, epoch_mean_latency_s_by_seed=[curve], epoch_mean_bound_s=[],
            wall_s=0.0,
        )  # fmt: skip

    assert recovery_epochs([5, 5, 20, 12, 12, 12, 12, 12, 12], 2, steady=6.0) == (None, 6.0)
    off = row("off", [5, 5, 20, 12, 12, 12, 12, 12, 12])
    warm = row("warm", [5, 5, 20, 15, 10, 8, 6, 6, 6])
    assert (off.recovery_epochs, warm.recovery_epochs) == (1, 4)
    score_recovery_to_best([off, warm], 2)
    assert (off.recovery_to_best_epochs, warm.recovery_to_best_epochs) == (None, 4)
    assert (off.recovery_to_best_epochs_by_seed, warm.recovery_to_best_epochs_by_seed) == (
        [None], [4],
    )  # fmt: skip
    met = compare_targets(off, warm, 2)
    assert met["off_has_transient"] is True
    assert met["warm_recovery_at_most_half_of_off"] is False
    assert met["warm_recovery_to_best_at_most_half_of_off"] is True


def test_without_a_transient_recovery_is_not_judged() -> None:
    """Demand that moves without hurting anyone leaves nothing to recover from: the recovery
    targets are not judged (None), the latency target still is."""
    moved = [7.3, 6.9, 5.4, 5.1, 6.1, 5.4, 5.3, 5.4, 4.3, 6.1, 5.3, 5.7, 4.6, 5.3, 5.0, 5.2]
    assert has_transient(moved, 8) is False, "bristol's demand move: 13% above, noise"
    surged = [7.1, 6.7, 5.9, 5.2, 6.0, 5.3, 5.3, 5.4, 6.6, 10.0, 11.9, 14.1, 13.3, 14.9]
    assert has_transient(surged, 8) is True
    assert has_transient(moved, 0) is None
    assert has_transient([7.0, 20.0, 30.0], 1) is None, "the cold start alone is no level"

    def row(memory: str, rec: int, mean: float) -> VariantResult:
        return VariantResult(
            memory=memory, llm="none", shift="demand-move", seeds=[0], recovery_epochs=rec,
            recovery_epochs_by_seed=[rec], post_shift_mean_latency_s=mean,
            post_shift_mean_latency_s_by_seed=[mean], jain=None, steady_state_s=5.4,
            refused_after_shift=0, early_replans=0, stored_experiences=0, planner_paths={},
            epoch_mean_latency_s=moved, epoch_mean_latency_s_by_seed=[moved],
            epoch_mean_bound_s=[], wall_s=0.0, recovery_to_best_epochs=rec,
        )  # fmt: skip

    met = compare_targets(row("off", 2, 5.32), row("warm", 2, 5.30), 8)
    assert met == {
        "off_has_transient": False,
        "warm_recovery_at_most_half_of_off": None,
        "warm_post_shift_latency_lower": True,
        "warm_recovery_to_best_at_most_half_of_off": None,
    }


def episode(
    store, seed: int, choice: int = 1, shifted: dict | None = None
) -> tuple[ScriptedChatModel, object]:
    sc = tiny_scenario(**(shifted or SHIFTED))
    model = ScriptedChatModel(replies=[f'{{"choice": {choice}, "rationale": "scripted"}}'])
    controller = AgentsController(model, memory=store, thread_id=f"t{seed}")
    run = run_episode(
        sc, generate_workload(sc, seed=seed), (ROUTERS.create("weighted"), controller),
        seed=seed, charge_decision_time=False,
    )  # fmt: skip
    return model, run


def test_the_lms_own_plan_picks_are_counted() -> None:
    """The benchmark says how often the LM picked another plan than the tools' best."""
    _, first = episode(None, 0)
    answers, not_first = planner_lm_picks(first.decisions)
    assert answers > 0 and not_first == 0
    _, second = episode(None, 0, choice=2)
    answers, not_first = planner_lm_picks(second.decisions)
    assert answers > 0 and not_first == answers


def early_plans(run) -> int:
    plans = [d.plan for d in run.decisions if d.plan is not None]
    return len(plans) - len({p.epoch for p in plans})


def prompts(model: ScriptedChatModel, agent: str) -> list[str]:
    return [str(call[-1].content) for call in model.seen if agent in str(call[0].content)]


def test_a_lost_site_replans_at_once_with_or_without_memory(tmp_path: Path) -> None:
    """An outage re-plans in the cycle that sees it (`graphs.control.outages_of`), memory or
    not; memory still stores the shift and the placement that settled after it."""
    store = ExperienceStore(tmp_path / "mem")
    _, cold = episode(store, seed=3)
    assert early_plans(cold) >= 1
    assert [d for d in cold.decisions if d.plan is not None and 20 <= d.time_s < 30]
    shifts = [e for e in store.all() if e.kind == "shift"]
    assert [e.shift for e in shifts] == ["site b down"]
    assert shifts[0].placement and "b" not in {s for s, ms in shifts[0].placement.items() if ms}
    assert shifts[0].demand["llm"] > 0 and shifts[0].action.startswith("settled on")

    _, off = episode(None, seed=4)
    assert [d for d in off.decisions if d.plan is not None and 20 <= d.time_s < 30]


def test_a_remembered_surge_replans_at_once(tmp_path: Path) -> None:
    """A surge changes no outage: only a remembered precedent re-plans before the epoch."""
    store = ExperienceStore(tmp_path / "mem")
    _, cold = episode(store, seed=3, shifted=SURGED)
    assert early_plans(cold) == 0, "nothing remembered yet: wait for the epoch"
    shifts = [e for e in store.all() if e.kind == "shift"]
    assert [e.shift for e in shifts] == ["surge llm"]

    reopened = ExperienceStore(tmp_path / "mem")
    model, warm = episode(reopened, seed=4, shifted=SURGED)
    assert early_plans(warm) >= 1, "the recalled shift made the planner re-plan between epochs"

    model, off = episode(None, seed=4, shifted=SURGED)
    assert early_plans(off) == 0
    assert not any(MARK in p for p in prompts(model, "Scheduler") + prompts(model, "Planner"))


def test_bench_adaptation_cli(tmp_path: Path) -> None:
    data = yaml.safe_load(TINY)
    data.update(
        placement={"a": ["llm"], "b": ["llm"]},
        control={"tick_s": 2, "drain_limit_s": 30},
        workload={"demands": [{"model": "llm", "arrivals": {"rate_per_s": 20.0}}]},
    )
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(data))
    out = tmp_path / "adapt.json"
    cmd = [sys.executable, "-m", "edgeagents", "bench", "adaptation", "--scenario", str(scenario),
           "--llm", "none", "--shifts", "site-failure", "--duration", "90", "--shift-at", "45",
           "--epoch", "10", "--seeds", "1", "--json", str(out), "--plots",
           str(tmp_path / "plots"), "--log", str(tmp_path / "logs")]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("episode ")]
    assert len(progress) == 4 and progress[0].startswith("episode 1/4 (0:00 h:min in): ")
    report = json.loads(out.read_text())
    rows = {v["memory"]: v for v in report["variants"]}
    assert set(rows) == {"off", "cold", "warm"}
    for v in rows.values():
        assert {"memory", "llm", "shift", "recovery_epochs", "post_shift_mean_latency_s",
                "jain"} <= set(v)  # fmt: skip
        assert v["llm"] == "none" and v["shift"] == "site-failure"
    assert rows["off"]["stored_experiences"] == 0 and rows["cold"]["stored_experiences"] > 0
    assert rows["off"]["early_replans"] >= 1, "the lost site re-planned before the epoch"
    assert rows["warm"]["early_replans"] >= rows["off"]["early_replans"]
    for v in rows.values():
        pairs = [(b, x) for b, x in zip(v["epoch_mean_bound_s"], v["epoch_mean_latency_s"],
                                         strict=True) if b is not None]  # fmt: skip
        assert pairs and all(0 < b <= x + 1e-9 for b, x in pairs), "nothing beats the bound"
    assert (tmp_path / "plots" / "adaptation-site-failure.png").stat().st_size > 0
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    runs = (("cold", 0), ("off", 0), ("warm", 0), ("warm-up", 1000))
    assert logs == [f"site-failure-none-{m}-seed{s}.decisions.jsonl" for m, s in runs]
    agents = {json.loads(x)["agent"].split(":")[0]
              for x in (tmp_path / "logs" / logs[2]).read_text().splitlines()}  # fmt: skip
    assert {"planner", "scheduler"} <= agents

    bad = subprocess.run(
        [sys.executable, "-m", "edgeagents", "bench", "adaptation", "--shifts", "meteor"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "meteor" in bad.stderr


def test_an_interrupted_adaptation_run_resumes_from_its_work_folder(tmp_path: Path) -> None:
    """Episodes finished before an interruption are taken from the work folder; the one that
    failed runs again, and a warm-up that runs again makes its warm episodes run again."""
    from edgeagents.experiments.adaptation import (
        AdaptationSettings,
        EpisodeCurve,
        EpisodeJob,
        run_adaptation,
    )

    settings = AdaptationSettings(duration_s=90, shift_at_s=45, planning_epoch_s=15)
    ran: list[str] = []

    def runner(fail_on: str | None = None):
        def run(j: EpisodeJob) -> EpisodeCurve:
            if j.memory == fail_on:
                raise RuntimeError(f"episode {j.memory}: interrupted")
            ran.append(j.memory)
            if j.store:
                Path(j.store).mkdir(parents=True, exist_ok=True)
            return EpisodeCurve(
                epoch_mean_latency_s=[5.0, 5.0, 5.0, 9.0, 6.0, 5.0], latency_s=[5.0, 6.0],
                model_index=[0, 0], arrival_s=[10.0, 50.0], references_s={"llm": 1.0},
                plans=6, early_plans=0, wall_s=0.0,
            )  # fmt: skip

        return run

    def adapt(run, **kw):
        return run_adaptation(
            tiny_scenario(), shifts=["site-failure"], llms=["none"], settings=settings,
            workdir=tmp_path / "work", runner=run, **kw,
        )  # fmt: skip

    with pytest.raises(RuntimeError, match="interrupted"):
        adapt(runner(fail_on="warm"))
    assert ran == ["warm-up", "off", "cold"]
    ran.clear()
    report = adapt(runner())
    assert ran == ["warm"], "only the episode that did not finish ran again"
    assert {v.memory for v in report.variants} == {"off", "cold", "warm"}
    ran.clear()
    adapt(runner())
    assert ran == []
    warm_up = tmp_path / "work" / "episodes" / "site-failure-none-warm-up-seed1000.json"
    warm_up.unlink()
    adapt(runner())
    assert sorted(ran) == ["warm", "warm-up"], "a new warm-up makes a new warm store"
    ran.clear()
    adapt(runner(), seeds=2)
    assert ran == ["off", "cold", "warm"], "seed 1 is new; seed 0 is done"


def test_parallel_episodes_need_not_wait_for_the_warm_up(tmp_path: Path) -> None:
    """With --jobs 2 the off and cold episodes run beside the warm-up; the warm episode starts
    only once the warm-up has finished, from a copy of its store; a failed warm-up fails the run
    with its own error, and its warm episode never runs."""
    import threading

    from edgeagents.experiments.adaptation import (
        AdaptationSettings,
        EpisodeCurve,
        EpisodeJob,
        run_adaptation,
    )

    settings = AdaptationSettings(duration_s=90, shift_at_s=45, planning_epoch_s=15)
    off_started = threading.Event()
    warm_up_over = threading.Event()
    ran: list[str] = []

    def run(j: EpisodeJob, fail_warm_up: bool = False) -> EpisodeCurve:
        ran.append(j.memory)
        store = Path(j.store or tmp_path / "none")
        if j.memory == "warm-up":
            assert off_started.wait(timeout=30), "off did not start beside the warm-up"
            if fail_warm_up:
                raise RuntimeError("warm-up: interrupted")
            store.mkdir(parents=True)
            (store / "learned").write_text("x")
            warm_up_over.set()
        elif j.memory == "off":
            off_started.set()
        elif j.memory == "warm":
            assert warm_up_over.is_set(), "warm started before its warm-up ended"
            assert (store / "learned").exists(), "warm starts from a copy of the warm-up's store"
        return EpisodeCurve(
            epoch_mean_latency_s=[5.0, 5.0, 5.0, 9.0, 6.0, 5.0], latency_s=[5.0, 6.0],
            model_index=[0, 0], arrival_s=[10.0, 50.0], references_s={"llm": 1.0},
            plans=6, early_plans=0, wall_s=0.0,
        )  # fmt: skip

    def adapt(runner, workdir: Path):
        return run_adaptation(
            tiny_scenario(), shifts=["site-failure"], llms=["none"], settings=settings,
            jobs=2, workdir=workdir, runner=runner,
        )  # fmt: skip

    report = adapt(run, tmp_path / "ok")
    assert sorted(ran) == ["cold", "off", "warm", "warm-up"]
    assert {v.memory for v in report.variants} == {"off", "cold", "warm"}
    ran.clear()
    off_started.clear()
    with pytest.raises(RuntimeError, match="warm-up: interrupted"):
        adapt(lambda j: run(j, fail_warm_up=True), tmp_path / "failed")
    assert "warm" not in ran


def test_the_scheduler_sees_recalled_shifts_only_on_a_shift() -> None:
    from edgeagents.agents.scheduler import create_scheduler
    from edgeagents.core.scenario import load_scenario

    sc = load_scenario("bristol")
    t = observed(sc, 60.0)
    config = {"configurable": {"scenario": sc}}
    line = "- settled on placement temple-meads: llama-3.1-8b -> mean latency 3.00 s"
    seen = {}
    for label, extra in (
        ("shift", {"shift": "site clifton down", "recalled": [line]}),
        ("calm", {}),
    ):
        model = ScriptedChatModel(replies=['{"choice": 1, "rationale": "scripted"}'])
        create_scheduler(model, scenario=sc)({"telemetry": t, "cycle": 1, **extra}, config)
        seen[label] = prompts(model, "Scheduler")
    assert seen["shift"] and seen["calm"], "two routing options differ: the LM is asked"
    assert MARK in seen["shift"][0] and line in seen["shift"][0]
    assert MARK not in seen["calm"][0]


def test_parallel_episodes_share_the_cores_among_their_local_lms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --jobs 2 every episode process gets half the cores for llama.cpp (its threads spin,
    so two processes with a thread per core each slow each other down); an explicit
    EDGEAGENTS_LM_THREADS wins; one job keeps the default."""
    import subprocess as sp

    import edgeagents.experiments.adaptation.schedule as adaptation
    from edgeagents.agents.llm import LM_THREADS_ENV
    from edgeagents.experiments.adaptation import AdaptationSettings, run_adaptation

    monkeypatch.setattr(adaptation.os, "cpu_count", lambda: 8)
    monkeypatch.delenv(LM_THREADS_ENV, raising=False)
    seen: list[str | None] = []

    def fake_run(cmd, **kw):  # what the episode process would be started with
        env = kw.get("env")
        seen.append(None if env is None else env.get(LM_THREADS_ENV))
        raise RuntimeError("episode not started")

    monkeypatch.setattr(sp, "run", fake_run)
    settings = AdaptationSettings(duration_s=90, shift_at_s=45, planning_epoch_s=15)

    def adapt(jobs: int) -> set[str | None]:
        start = len(seen)
        with pytest.raises(RuntimeError, match="not started"):
            run_adaptation(
                tiny_scenario(), shifts=["site-failure"], llms=["none"], settings=settings,
                jobs=jobs, workdir=tmp_path / f"w{jobs}-{len(seen)}",
            )  # fmt: skip
        return set(seen[start:])

    assert adapt(2) == {"4"}
    assert adapt(1) == {None}
    monkeypatch.setenv(LM_THREADS_ENV, "3")
    assert adapt(2) == {None}
