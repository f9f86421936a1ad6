"""The agents' tools: the arithmetic behind their menus (memory fit, tentative layouts,
candidate moves, routing weights, compute shares, recovery), on hand-built telemetry of the
tiny city and on Bristol's initial placement."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import make_workload, tiny_scenario

from edgeagents.agents.plan_search import (
    PLAN_PROMPT_BUDGET,
    fill_empty_gpus,
    models_reduced,
    placement_actions,
    placement_moves,
    robust,
    search_plans,
)
from edgeagents.agents.tools import (
    ActionSet,
    Layout,
    PlanCandidate,
    deployer_menu,
    describe_moves,
    model_facts,
    placement_of,
    rank_routing,
    recovery_actions,
    routing_strategies,
    share_actions,
    typical_standalone_s,
)
from edgeagents.agents.twin import Prediction, WhatIf, forecast_demand
from edgeagents.core.scenario import Scenario, load_scenario
from edgeagents.core.state import (
    Deployment,
    DeploymentAction,
    GpuTelemetry,
    ModelTelemetry,
    Plan,
    ReplicaTelemetry,
    SiteTelemetry,
    Telemetry,
)
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity
from edgeagents.sim.workload import generate_workload

SC = tiny_scenario()
LLM = SC.model("llm")
TWO = tiny_scenario(models=[LLM.model_dump(), {**LLM.model_dump(), "name": "llm2"}])
"""The tiny city with a twin of `llm` named `llm2`."""
H200, L4 = SC.gpu_catalogue["H200"], SC.gpu_catalogue["L4"]
T_H200 = typical_standalone_s(SC, LLM, H200)
T_L4 = typical_standalone_s(SC, LLM, L4)
BRISTOL = load_scenario("bristol")


@dataclass
class Rep:
    id: int
    site: str
    model: str = "llm"
    gpu: int = 0
    share: float = 1.0
    busy: float = 0.5


def telemetry(
    reps: list[Rep],
    scenario: Scenario = SC,
    *,
    rates: dict[str, float] | None = None,
    means: dict[str, float] | None = None,
    free: dict[str, float] | None = None,
    down: tuple[str, ...] = (),
) -> Telemetry:
    """Telemetry at 60 s: the replicas given (each reserving its model's memory at its default
    batch), each GPU's free memory what they leave unless `free` (site -> GB) says."""
    catalogue = scenario.gpu_catalogue
    used: dict[tuple[str, int], float] = {}
    replicas = []
    for r in reps:
        spec = scenario.model(r.model)
        mem = spec.memory_gb(spec.max_batch)
        used[(r.site, r.gpu)] = used.get((r.site, r.gpu), 0.0) + mem
        d = Deployment(
            replica_id=r.id, site=r.site, model=r.model, gpu_index=r.gpu, state="ready",
            ready_at_s=0.0, compute_share=r.share, max_batch=spec.max_batch, memory_gb=mem,
        )  # fmt: skip
        replicas.append(
            ReplicaTelemetry(deployment=d, queue_len=0, running=0, busy_share=r.busy, served=0)
        )
    sites = []
    for s in scenario.sites:
        types = [slot.type for slot in s.gpus for _ in range(slot.count)]
        gpus = [
            GpuTelemetry(
                index=k, type=name, memory_gb=catalogue[name].memory_gb,
                free_memory_gb=(free or {}).get(
                    s.name, catalogue[name].memory_gb - used.get((s.name, k), 0.0)
                ),
                compute_share_free=0.0,
            )
            for k, name in enumerate(types)
        ]  # fmt: skip
        sites.append(
            SiteTelemetry(
                site=s.name, up=s.name not in down, gpus=gpus, loaded_models=[], queue_len=0,
                running=0, busy_share=0.0,
            )
        )  # fmt: skip
    models = [
        ModelTelemetry(
            model=m.name, arrivals_per_s=(rates or {}).get(m.name, 0.0),
            arrivals_per_s_by_cell={}, served=0, refused=0,
            mean_latency_s=(means or {}).get(m.name), queue_len=0,
            replicas=sum(r.model == m.name for r in reps),
        )
        for m in scenario.models
    ]  # fmt: skip
    return Telemetry(time_s=60.0, window_s=30.0, sites=sites, replicas=replicas, models=models)


def act(op: str, site: str, model: str = "llm", gpu: int | None = 0, **kw) -> DeploymentAction:
    return DeploymentAction(site=site, model=model, op=op, gpu_index=gpu, **kw)


def prediction(**per_model: float) -> Prediction:
    return Prediction(
        mean_latency_s=5.0, jain=1.0, per_model_mean_s=per_model, refused=0, prompts=10
    )


def bristol_now() -> Telemetry:
    """Bristol's initial placement, observed before any prompt."""
    city = SimulatedCity(BRISTOL, make_workload(BRISTOL, []), ROUTERS.create("greedy"))
    return city.observe()


# ---- facts ----------------------------------------------------------------------------------


def test_typical_standalone_time_is_faster_on_a_faster_gpu() -> None:
    assert 0 < T_H200 < T_L4
    assert typical_standalone_s(SC, LLM, H200) == T_H200, "deterministic (and cached)"


def test_model_facts_slowdown_is_the_mean_over_the_reference() -> None:
    t = telemetry([Rep(0, "a")], TWO, rates={"llm": 2.5}, means={"llm": 3.0})
    llm, llm2 = model_facts(t, {"llm": 1.5, "llm2": 0.0})
    assert (llm.model, llm.demand_per_s, llm.replicas, llm.mean_latency_s) == ("llm", 2.5, 1, 3.0)
    assert llm.slowdown == pytest.approx(2.0)
    assert llm.reference_s == 1.5
    assert llm2.slowdown is None, "no latency measured"
    t = telemetry([], TWO, means={"llm": 3.0, "llm2": 4.0})
    llm, llm2 = model_facts(t, {"llm2": 0.0})
    assert llm.slowdown is None and llm.reference_s == 0.0, "no reference known"
    assert llm2.slowdown is None, "a zero reference is no reference"


# ---- the layout -------------------------------------------------------------------------------


def test_placement_of_lists_every_site_and_one_entry_per_replica() -> None:
    reps = [Rep(0, "b", "llm2"), Rep(1, "b", "llm"), Rep(2, "b", "llm", gpu=0), Rep(3, "c")]
    assert placement_of(telemetry(reps, TWO)) == {
        "a": [],
        "b": ["llm", "llm", "llm2"],
        "c": ["llm"],
    }


def test_layout_fit_needs_batch_one_memory_on_an_up_site() -> None:
    need = LLM.memory_gb(1)
    t = telemetry([], free={"a": need, "b": need - 1e-6}, down=("c",))
    layout = Layout(t, SC)
    assert layout.fits(LLM, ("a", 0))
    assert not layout.fits(LLM, ("b", 0)), "short of batch-1 memory"
    assert not layout.fits(LLM, ("c", 0)), "c is down though its L4 is empty"


def test_layout_load_shrinks_the_batch_to_the_memory_left() -> None:
    """17.3 GB free: llm reserves 17.06 GB plus 0.0671 GB per batch slot, so batch 3
    (17.261 GB) is the largest that fits."""
    per_item = 131072 * 512 / 1e9
    layout = Layout(telemetry([], free={"b": 17.3}), SC)
    assert layout.apply(act("load", "b"))
    [d] = layout.replicas
    assert (d.site, d.model, d.gpu_index, d.max_batch, d.state) == ("b", "llm", 0, 3, "loading")
    assert d.memory_gb == pytest.approx(17.06 + 3 * per_item)
    assert layout.free[("b", 0)] == pytest.approx(17.3 - 17.06 - 3 * per_item)
    assert not layout.apply(act("load", "b")), "nothing left for another"
    roomy = Layout(telemetry([]), SC)
    assert roomy.apply(act("load", "a", compute_share=0.5))
    assert roomy.replicas[0].max_batch == 8 and roomy.replicas[0].compute_share == 0.5
    assert roomy.free[("a", 0)] == pytest.approx(141.0 - LLM.memory_gb(8))


def test_layout_refuses_loads_it_cannot_place() -> None:
    layout = Layout(telemetry([], down=("b",)), SC)
    assert not layout.apply(act("load", "b")), "site down"
    assert not layout.apply(act("load", "a", gpu=1)), "a has one GPU"
    assert not layout.apply(act("load", "nowhere")), "unknown site"
    assert layout.replicas == []
    assert layout.apply(act("load", "a", gpu=None)), "None: GPU 0"
    assert layout.replicas[0].gpu_index == 0


def test_layout_unload_frees_the_replicas_memory() -> None:
    layout = Layout(telemetry([Rep(0, "a"), Rep(1, "b")]), SC)
    before = layout.free[("a", 0)]
    assert layout.count("llm") == 2 and layout.tenants(("a", 0)) == 1
    assert layout.apply(act("unload", "a", gpu=None))
    assert layout.count("llm") == 1 and layout.tenants(("a", 0)) == 0
    assert layout.free[("a", 0)] == pytest.approx(before + LLM.memory_gb(8))
    assert not layout.apply(act("unload", "a")), "none left at a"
    assert not layout.apply(act("unload", "c")), "never one at c"
    assert layout.apply(act("configure", "b", compute_share=0.5)), "configure changes no memory"
    assert layout.count("llm") == 1


def test_layout_does_not_change_the_telemetry() -> None:
    t = telemetry([Rep(0, "a")])
    layout = Layout(t, SC)
    layout.apply(act("unload", "a"))
    layout.apply(act("load", "b"))
    assert [r.deployment.site for r in t.replicas] == ["a"]
    assert Layout(t, SC).count("llm") == 1


# ---- placement moves ----------------------------------------------------------------------------


def test_placement_moves_load_the_slowed_model_on_the_fastest_room_first() -> None:
    """Per replica of speed: b's empty H200 (1 / t), a's H200 shared with the llm there
    (1 / 2t), c's L4 (1 / 15.7 t)."""
    t = telemetry([Rep(0, "a", busy=0.0)])
    moves = placement_moves(t, SC, prediction(llm=5.0), {"llm": 1.0})
    assert moves == [[act("load", "b")], [act("load", "a")], [act("load", "c")]]
    assert placement_moves(t, SC, prediction(llm=5.0), {"llm": 1.0}, per_kind=1) == [
        [act("load", "b")]
    ]


def test_placement_moves_offer_only_loads_that_fit() -> None:
    t = telemetry([Rep(0, "a")], free={"a": 0.0, "c": 10.0})
    moves = placement_moves(t, SC, prediction(llm=5.0), {"llm": 1.0})
    assert moves == [[act("load", "b")]]
    down = telemetry([Rep(0, "a")], free={"a": 0.0, "c": 10.0}, down=("b",))
    assert placement_moves(down, SC, prediction(llm=5.0), {"llm": 1.0}) == []


def test_placement_moves_put_a_model_without_replicas_first() -> None:
    t = telemetry([Rep(0, "a"), Rep(1, "b")], TWO)
    moves = placement_moves(t, TWO, prediction(llm=5.0), {"llm": 1.0})
    assert moves[:3] == [
        [act("load", "a", "llm2")],
        [act("load", "b", "llm2")],
        [act("load", "c", "llm2")],
    ], "a and b share with one llm each (1 / 2t) and still beat the L4"
    swaps = [m for m in moves if len(m) == 2]
    assert swaps == [
        [act("unload", "a"), act("load", "a", "llm2")],
        [act("unload", "b"), act("load", "b", "llm2")],
    ], "llm has two replicas, so either may make way"


def test_placement_moves_unload_only_idle_replicas_of_models_with_a_spare() -> None:
    busy = [Rep(0, "a", busy=0.5), Rep(1, "b", busy=0.5)]
    ref = {"llm": 1.0}
    unloads = [m for m in placement_moves(telemetry(busy), SC, prediction(llm=5.0), ref)
               if m[0].op == "unload"]  # fmt: skip
    assert unloads == []
    idle = [Rep(0, "a", busy=0.01), Rep(1, "b", busy=0.5)]
    unloads = [m for m in placement_moves(telemetry(idle), SC, prediction(llm=5.0), ref)
               if m[0].op == "unload"]  # fmt: skip
    assert unloads == [[act("unload", "a")]]
    alone = [Rep(0, "a", busy=0.0)]
    assert not any(m[0].op == "unload" for m in placement_moves(
        telemetry(alone), SC, prediction(llm=5.0), ref))  # fmt: skip


def test_placement_moves_start_from_the_prefix() -> None:
    t = telemetry([Rep(0, "a", busy=0.0)])
    prefix = [act("load", "b")]
    moves = placement_moves(t, SC, prediction(llm=5.0), {"llm": 1.0}, prefix)
    assert moves and all(m[:1] == prefix and len(m) == 2 for m in moves)
    assert [act("load", "b"), act("unload", "a")] in moves, "a is idle now b is planned"


def test_bristol_moves_are_feasible_in_order() -> None:
    """Every candidate move from Bristol's placement, applied step by step to a fresh layout,
    fits GPU memory, and loads only on up sites."""
    t = bristol_now()
    refs = {m: 1.0 for m in BRISTOL.model_names}
    base = prediction(**{m: 2.0 + k for k, m in enumerate(BRISTOL.model_names)})
    for down in ((), ("temple-meads",)):
        # a failed site's replicas are gone, as in the city
        tt = t.model_copy(
            update={
                "sites": [s.model_copy(update={"up": s.site not in down}) for s in t.sites],
                "replicas": [r for r in t.replicas if r.deployment.site not in down],
            }
        )
        moves = placement_moves(tt, BRISTOL, base, refs)
        assert moves
        for move in moves:
            layout = Layout(tt, BRISTOL)
            for a in move:
                assert a.site not in down
                assert layout.apply(a), describe_moves(move)
            assert all(f >= -1e-9 for f in layout.free.values())


def test_placement_moves_survive_a_model_with_no_served_prompt() -> None:
    """llm has two replicas but no latency in the base prediction (its prompts all refused,
    e.g. cut off by a link failure); llm2 is slowed down and could take one's GPU."""
    t = telemetry([Rep(0, "a"), Rep(1, "b")], TWO)
    moves = placement_moves(t, TWO, prediction(llm2=5.0), {"llm": 1.0, "llm2": 1.0})
    assert [act("unload", "a"), act("load", "a", "llm2")] in moves


def test_search_plans_survives_replicas_cut_off_by_a_link_failure() -> None:
    sc = tiny_scenario(
        models=[LLM.model_dump(), {**LLM.model_dump(), "name": "llm2"}],
        placement={"b": ["llm", "llm"]},
        workload={"demands": [{"model": m, "arrivals": {"rate_per_s": 2.0}}
                              for m in ("llm", "llm2")]},
        events=[{"at_s": 0.0, "kind": "link_down", "link": ["a", "b"]}],
    )  # fmt: skip
    city = SimulatedCity(sc, generate_workload(sc, seed=1), ROUTERS.create("greedy"))
    city.advance(10.0)
    t = city.observe()
    whatif = WhatIf(sc, forecast_demand(t), t, horizon_s=20.0)
    assert search_plans(whatif, t, sc, budget_s=5.0)


def test_describe_moves() -> None:
    assert describe_moves([]) == "hold"
    moves = [act("unload", "b", "llm2", gpu=1), act("load", "a")]
    assert describe_moves(moves) == "unload llm2@b/gpu1; load llm@a/gpu0"


# ---- placement actions ------------------------------------------------------------------------


def test_placement_actions_load_on_the_gpu_with_most_free_memory() -> None:
    """temple-meads' A100s have 57.07 and 61.32 GB free: whisper goes on GPU 1."""
    t = bristol_now()
    target = placement_of(t)
    target["temple-meads"] = [*target["temple-meads"], "whisper-large-v3"]
    moves = placement_actions(target, t, BRISTOL)
    assert moves == [act("load", "temple-meads", "whisper-large-v3", gpu=1)]


def test_placement_actions_skip_loads_that_do_not_fit_and_unknown_models() -> None:
    """cabot-circus' RTX 4090s have 1.07 and 5.32 GB free; SD 1.5 needs 2.91 at batch 1 and
    takes 4.87 at batch 8: one fits (on GPU 1), the second not."""
    t = bristol_now()
    target = {"cabot-circus": [*placement_of(t)["cabot-circus"], *["stable-diffusion-1.5"] * 2]}
    moves = placement_actions(target, t, BRISTOL)
    assert moves == [act("load", "cabot-circus", "stable-diffusion-1.5", gpu=1)]
    target = {"clifton": ["whisper-large-v3", "gpt-9"]}
    assert placement_actions(target, t, BRISTOL) == []


def test_placement_actions_unload_first_to_make_room() -> None:
    """harbourside's L40S has 20.2 GB free beside llama and SD: swapping llama for the VLM
    (16.9 GB at batch 1) frees llama's 22.9 GB first."""
    t = bristol_now()
    target = {"harbourside": ["qwen2-vl-7b", "stable-diffusion-1.5"]}
    moves = placement_actions(target, t, BRISTOL)
    assert [(a.op, a.model) for a in moves] == [("unload", "llama-3.1-8b"), ("load", "qwen2-vl-7b")]
    assert all(a.site == "harbourside" and a.gpu_index == 0 for a in moves)


# ---- routing strategies -------------------------------------------------------------------------


def test_routing_strategies_weigh_sites_by_speed() -> None:
    """llm on a's H200 and c's L4: c is T_H200 / T_L4 as fast (under a half)."""
    t = telemetry([Rep(0, "a"), Rep(1, "c")])
    out = routing_strategies(t, SC)
    assert set(out) == {"even", "fast-preferred", "fast-only"}

    def weights(name: str) -> dict[str, float]:
        return {w.site: w.weight for w in out[name].routes["llm"]}

    ratio = T_H200 / T_L4
    assert ratio < 0.5
    assert weights("even") == {"a": 1.0, "c": 1.0}
    fast = weights("fast-preferred")
    assert fast["a"] == 1.0 and fast["c"] == pytest.approx(ratio**2)
    assert weights("fast-only") == {"a": 1.0, "c": 0.0}


def test_routing_strategies_skip_down_sites_and_merge_replicas_of_a_site() -> None:
    t = telemetry([Rep(0, "a"), Rep(1, "b"), Rep(2, "b"), Rep(3, "c")], down=("a",))
    out = routing_strategies(t, SC)
    for policy in out.values():
        assert [w.site for w in policy.routes["llm"]] == ["b", "c"]
    assert out["fast-only"].routes["llm"][0].weight == 1.0
    none = routing_strategies(telemetry([]), SC)
    assert all(p.routes == {} for p in none.values())


def test_rank_routing_is_sorted_and_distinct() -> None:
    sc = tiny_scenario(
        placement={"a": ["llm"], "c": ["llm"]},
        workload={"demands": [{"model": "llm", "arrivals": {"rate_per_s": 20.0}}]},
    )
    city = SimulatedCity(sc, generate_workload(sc, seed=3), ROUTERS.create("weighted"))
    city.advance(10.0)
    t = city.observe()
    whatif = WhatIf(sc, forecast_demand(t), t, horizon_s=15.0)
    menu = rank_routing(whatif, t, sc, tolerance=0.05)
    scores = [c.prediction.score() for c in menu]
    assert scores == sorted(scores)
    assert {c.name for c in menu} <= {"even", "fast-preferred", "fast-only"}
    for k, a in enumerate(scores):
        for b in scores[:k]:
            assert abs(a - b) > 0.05 * b, "options within the tolerance are one option"


# ---- compute shares, recovery, the deployer's menu ---------------------------------------------


def test_share_actions_split_a_gpu_by_demand() -> None:
    """3 and 1 prompts/s (plus 0.001 each): shares 0.75 and 0.25 from 1.0 each."""
    t = telemetry([Rep(0, "a"), Rep(1, "a", "llm2")], TWO, rates={"llm": 3.0, "llm2": 1.0})
    assert share_actions("a", t, None) == [
        act("configure", "a", "llm", compute_share=0.75),
        act("configure", "a", "llm2", compute_share=0.25),
    ]
    assert share_actions("b", t, None) == [], "nothing co-located at b"
    assert share_actions("a", t, None, skip_gpus={0}) == [], "GPU 0 is about to change"


def test_share_actions_multiply_demand_by_priority() -> None:
    t = telemetry([Rep(0, "a"), Rep(1, "a", "llm2")], TWO, rates={"llm": 3.0, "llm2": 1.0})
    plan = Plan(priorities={"llm2": 3.0})
    assert share_actions("a", t, plan) == [
        act("configure", "a", "llm", compute_share=0.5),
        act("configure", "a", "llm2", compute_share=0.5),
    ]


def test_share_actions_clip_at_a_tenth_and_move_only_by_more_than_a_tenth() -> None:
    t = telemetry([Rep(0, "a"), Rep(1, "a", "llm2")], TWO, rates={"llm": 100.0})
    assert share_actions("a", t, None) == [act("configure", "a", "llm2", compute_share=0.1)], (
        "llm's 1.0 stays; idle llm2 keeps a tenth"
    )
    near = [Rep(0, "a", share=0.7), Rep(1, "a", "llm2", share=0.3)]
    t = telemetry(near, TWO, rates={"llm": 3.0, "llm2": 1.0})
    assert share_actions("a", t, None) == [], "0.75 / 0.25 is within 0.1 of 0.7 / 0.3"


def test_recovery_loads_a_missing_model_at_the_fastest_site_only() -> None:
    """llm2 has no replica: b's empty H200 beats a's (shared with llm) and c's L4; only b's
    deployer acts."""
    t = telemetry([Rep(0, "a")], TWO)
    assert recovery_actions("b", t, TWO) == [act("load", "b", "llm2")]
    assert recovery_actions("a", t, TWO) == []
    assert recovery_actions("c", t, TWO) == []
    b_down = telemetry([Rep(0, "a")], TWO, down=("b",))
    assert recovery_actions("a", b_down, TWO) == [act("load", "a", "llm2")]
    full = telemetry([Rep(0, "a")], TWO, free={"a": 1.0, "b": 1.0, "c": 1.0})
    assert all(recovery_actions(s, full, TWO) == [] for s in TWO.site_names)
    placed = telemetry([Rep(0, "a"), Rep(1, "c", "llm2")], TWO)
    assert all(recovery_actions(s, placed, TWO) == [] for s in TWO.site_names)


def test_recovery_breaks_speed_ties_by_free_memory() -> None:
    t = telemetry([], free={"a": 120.0, "b": 100.0})
    assert recovery_actions("a", t, SC) == [act("load", "a")]
    assert recovery_actions("b", t, SC) == []


def test_deployer_menu_with_nothing_to_do_is_hold_alone() -> None:
    t = telemetry([Rep(0, "a"), Rep(1, "c", "llm2")], TWO)
    assert deployer_menu("a", t, TWO, None, []) == [
        ActionSet(name="hold", actions=[], note="change nothing this tick")
    ]


def test_deployer_menu_offers_plan_shares_and_recovery_then_less() -> None:
    """a has two H200s here: llm and llm2 share GPU 0, the plan loads onto GPU 1."""
    sites = [s.model_dump() for s in TWO.sites]
    sites[0]["gpus"] = [{"type": "H200", "count": 2}]
    sc = TWO.model_copy(update={"sites": [type(TWO.sites[0]).model_validate(x) for x in sites]})
    t = telemetry([Rep(0, "a"), Rep(1, "a", "llm2")], sc, rates={"llm": 3.0, "llm2": 1.0})
    pending = [act("load", "a", gpu=1)]
    menu = deployer_menu("a", t, sc, None, pending)
    assert [m.name for m in menu] == ["plan+shares+recovery", "plan+recovery", "hold"]
    assert menu[0].actions == [*pending, *share_actions("a", t, None)]
    assert len(menu[0].actions) == 3
    assert menu[0].note == "1 planned, 0 recovery, 2 share changes"
    assert menu[1].actions == pending and menu[2].actions == []
    quiet = deployer_menu("a", t, sc, None, pending, retune=False)
    assert [(m.name, m.actions) for m in quiet] == [
        ("plan+shares+recovery", pending),
        ("hold", []),
    ]
    moving = [act("unload", "a", "llm2", gpu=0)]
    touched = deployer_menu("a", t, sc, None, moving)
    assert [(m.name, m.actions) for m in touched] == [
        ("plan+shares+recovery", moving),
        ("hold", []),
    ], "no share changes on a GPU the plan is changing"


def test_deployer_menu_recovery_suspends_share_changes() -> None:
    """llm2 has no replica. a is full, c's L4 is slow: b, where llm and llm3 share the H200,
    recovers it, and leaves their shares (due: llm3 is idle) alone this tick."""
    three = tiny_scenario(
        models=[
            LLM.model_dump(),
            {**LLM.model_dump(), "name": "llm2"},
            {**LLM.model_dump(), "name": "llm3"},
        ]
    )
    reps = [Rep(0, "b"), Rep(1, "b", "llm3")]
    t = telemetry(reps, three, rates={"llm": 3.0}, free={"a": 0.0})
    assert share_actions("b", t, None) == [act("configure", "b", "llm3", compute_share=0.1)]
    menu = deployer_menu("b", t, three, None, [])
    assert [(m.name, m.actions) for m in menu] == [
        ("plan+shares+recovery", [act("load", "b", "llm2")]),
        ("hold", []),
    ]
    assert menu[0].note == "0 planned, 1 recovery, 0 share changes"
    assert [m.name for m in deployer_menu("a", t, three, None, [])] == ["hold"]


# ---- refilling empty GPUs -----------------------------------------------------------------------


def test_fill_empty_gpus_loads_every_empty_live_gpu_toward_the_busy_model() -> None:
    """`llm2` has nine tenths of the arrivals and no replica: both empty GPUs take it or, where
    it is already, `llm`; a GPU that holds a replica and a site that is down take nothing."""
    t = telemetry([Rep(0, "a")], TWO, rates={"llm": 1.0, "llm2": 9.0})
    fill = fill_empty_gpus(Layout(t, TWO), TWO, t)
    assert fill == [act("load", "b", "llm2"), act("load", "c", "llm2")]
    down = telemetry([Rep(0, "a")], TWO, rates={"llm": 1.0, "llm2": 9.0}, down=("c",))
    assert fill_empty_gpus(Layout(down, TWO), TWO, down) == [act("load", "b", "llm2")]
    idle = telemetry([Rep(0, "a")], TWO)
    assert fill_empty_gpus(Layout(idle, TWO), TWO, idle) == [], "no arrivals: nothing to size to"


def test_placement_moves_offer_the_whole_refill_as_one_candidate() -> None:
    t = telemetry([Rep(0, "a")], TWO, rates={"llm": 1.0, "llm2": 9.0})
    moves = placement_moves(t, TWO, prediction(llm=1.0, llm2=5.0), {"llm": 1.0, "llm2": 1.0})
    assert [act("load", "b", "llm2"), act("load", "c", "llm2")] in moves
    one = telemetry([Rep(0, "a"), Rep(1, "b")], TWO, rates={"llm": 1.0, "llm2": 9.0})
    moves = placement_moves(one, TWO, prediction(llm=1.0, llm2=5.0), {"llm": 1.0, "llm2": 1.0})
    assert all(len([a for a in m if a.op == "load"]) <= 1 for m in moves), "one empty GPU: loads"


def test_a_city_of_one_replica_per_model_and_site_gets_no_second_one() -> None:
    """The Ray Serve city holds one replica of a model per site (its telemetry says so): no
    load, swap or refill proposes a second one there; the simulated city has no such limit."""
    reps = [Rep(0, "a"), Rep(1, "b", "llm2"), Rep(2, "b")]
    free = telemetry(reps, TWO, rates={"llm": 9.0, "llm2": 1.0})
    assert Layout(free, TWO).fits(LLM, ("a", 0)), "the simulated city: a second llm at a fits"
    one = free.model_copy(update={"replicas_per_model_site": 1})
    layout = Layout(one, TWO)
    assert not layout.fits(LLM, ("a", 0)) and layout.fits(LLM, ("c", 0))
    assert layout.at_limit("llm", "b") and not layout.at_limit("llm2", "a")
    moves = placement_moves(one, TWO, prediction(llm=9.0, llm2=1.0), {"llm": 1.0, "llm2": 1.0})
    assert moves
    for move in moves:
        check = Layout(one, TWO)
        for a in move:
            if a.op == "load":
                assert not check.at_limit(a.model, a.site), describe_moves(move)
            check.apply(a)


BOTH = TWO.model_copy(
    update={"workload": TWO.workload.model_copy(update={"demands": [
        TWO.workload.demands[0].model_copy(update={"model": m}) for m in ("llm", "llm2")
    ]})}
)  # fmt: skip
"""`TWO` with demand for both models."""


def swap_on_evidence(span_s: float, budget: int | None = None) -> tuple[bool, bool]:
    """Whether a swap of `llm2`'s H200 replica at b for `llm` (at 6 prompts/s, behind) and a
    load of `llm` alone pass `robust`, with `llm2` seen at 0.2 prompts/s over `span_s`
    (and `budget` more twin prompts allowed, if given)."""
    reps = [Rep(0, "a"), Rep(1, "b", "llm2"), Rep(2, "c", "llm2")]
    t = telemetry(reps, BOTH, rates={"llm": 6.0, "llm2": 0.2})
    t = t.model_copy(update={"time_s": span_s})
    whatif = WhatIf(BOTH, forecast_demand(t), t, horizon_s=60.0)
    current = [r.deployment for r in t.replicas]
    swap = [act("unload", "b", "llm2"), act("load", "b")]
    load = [act("load", "b")]
    candidates = [
        PlanCandidate(name="x", actions=m, prediction=whatif.evaluate(current, m))
        for m in (swap, load)
    ]
    limit = PLAN_PROMPT_BUDGET if budget is None else whatif.simulated + budget
    swap_ok, load_ok = (robust(whatif, current, c, {}, limit) for c in candidates)
    return swap_ok, load_ok


def test_a_swap_on_one_arrival_in_five_seconds_is_not_robust_on_a_full_window_it_is() -> None:
    """The same 0.2 prompts/s of `llm2`: one prompt in 5 s may be a rate several times that,
    under which its one L4 left is swamped; six in a full 30-s window hold it near 0.2."""
    assert models_reduced([act("unload", "b", "llm2"), act("load", "b")]) == {"llm2"}
    assert models_reduced([act("unload", "b", "llm2"), act("load", "c", "llm2")]) == set()
    assert swap_on_evidence(5.0) == (False, True)
    assert swap_on_evidence(30.0) == (True, True)
    assert swap_on_evidence(30.0, budget=0) == (False, True), "no room to check: no taking"
