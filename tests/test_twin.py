"""The digital twin: demand forecasts (smoothing, decaying peaks), the what-if predictions and
their score, how operator intents enter the twin (priorities, surges, maintenance), and the
live state it starts from (queues, the rates' uncertainty)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_workload, tiny_scenario

from edgeagents.agents.twin import (
    PEAK_DECAY,
    TRACE_SHIFT_S,
    Prediction,
    WhatIf,
    forecast_demand,
    forecast_refuted,
    intent_shifts,
    operator_priorities,
    rate_upper_bound,
    sized_like,
)
from edgeagents.core.notice import Intent
from edgeagents.core.scenario import CityEvent, DemandShift
from edgeagents.core.state import DeploymentAction, Forecast, ModelTelemetry, Telemetry
from edgeagents.policies import ROUTERS
from edgeagents.sim.city import SimulatedCity

SC = tiny_scenario(placement={"a": ["llm"]})
LLM = SC.model("llm")
TWO = tiny_scenario(
    models=[LLM.model_dump(), {**LLM.model_dump(), "name": "llm2"}],
    placement={"a": ["llm", "llm2"]},
    workload={"demands": [{"model": m, "arrivals": {"rate_per_s": 1.0}} for m in ("llm", "llm2")]},
)
CELLS = tiny_scenario(
    cells=[
        {"name": "a", "site": "a", "users": 10, "uplink_mbps": 40, "downlink_mbps": 200},
        {"name": "b", "site": "b", "users": 30, "uplink_mbps": 40, "downlink_mbps": 200},
    ]
)
"""Two cells: a with a quarter of the users."""


def window(
    by_cell: dict[str, dict[str, float]], *, t: float = 60.0, window_s: float = 30.0
) -> Telemetry:
    """Telemetry whose window saw these prompts/s per model and cell."""
    models = [
        ModelTelemetry(
            model=m, arrivals_per_s=sum(cells.values()), arrivals_per_s_by_cell=cells, served=0,
            refused=0, queue_len=0, replicas=1,
        )
        for m, cells in by_cell.items()
    ]  # fmt: skip
    return Telemetry(time_s=t, window_s=window_s, sites=[], replicas=[], models=models)


def observed(scenario=SC, *, t: float = 100.0, down: tuple[str, ...] = ()) -> Telemetry:
    """The city's telemetry at `t`, no prompts sent; sites in `down` marked failed."""
    city = SimulatedCity(scenario, make_workload(scenario, []), ROUTERS.create("greedy"))
    city.advance(t)
    out = city.observe()
    sites = [s if s.site not in down else s.model_copy(update={"up": False}) for s in out.sites]
    return out.model_copy(update={"sites": sites})


def intent(kind: str, start: float, end: float, **kw) -> Intent:
    return Intent(kind=kind, start_s=start, end_s=end, notice_id=kw.pop("notice_id", "n1"), **kw)


# ---- forecasts -----------------------------------------------------------------------------


def test_first_forecast_is_the_window() -> None:
    t = window({"llm": {"a": 2.0, "b": 1.0}, "llm2": {"a": 1.0, "b": 0.0}})
    f = forecast_demand(t)
    assert f.rates_per_s == {"llm": 3.0, "llm2": 1.0}
    assert f.cell_weights == {"a": 0.75, "b": 0.25}
    assert f.peak_rates_per_s == {"llm": 3.0, "llm2": 1.0}


def test_forecast_smooths_rates_exponentially() -> None:
    previous = Forecast(rates_per_s={"llm": 4.0}, cell_weights={"a": 1.0})
    t = window({"llm": {"a": 2.0}, "llm2": {"a": 1.0}})
    assert forecast_demand(t, previous).rates_per_s == {
        "llm": pytest.approx(0.5 * 2.0 + 0.5 * 4.0),
        "llm2": 1.0,  # nothing to smooth with: the window's rate
    }
    assert forecast_demand(t, previous, smoothing=0.25).rates_per_s["llm"] == pytest.approx(
        0.25 * 2.0 + 0.75 * 4.0
    )
    assert forecast_demand(t, previous, smoothing=1.0).rates_per_s["llm"] == 2.0


def test_forecast_smooths_cell_weights_and_keeps_them_when_nothing_arrived() -> None:
    previous = Forecast(rates_per_s={"llm": 1.0}, cell_weights={"a": 0.8, "b": 0.2})
    t = window({"llm": {"a": 1.0, "b": 3.0}})  # shares 0.25, 0.75
    cells = forecast_demand(t, previous, smoothing=0.5).cell_weights
    assert cells == {"a": pytest.approx(0.525), "b": pytest.approx(0.475)}
    quiet = window({"llm": {"a": 0.0, "b": 0.0}})
    f = forecast_demand(quiet, previous)
    assert f.cell_weights == {"a": 0.8, "b": 0.2}
    assert f.rates_per_s == {"llm": 0.5}


def test_forecast_peak_is_the_raw_window_rate_not_the_smoothed_one() -> None:
    previous = Forecast(rates_per_s={"llm": 0.0}, cell_weights={}, peak_rates_per_s={"llm": 0.0})
    f = forecast_demand(window({"llm": {"a": 6.0}}), previous)
    assert f.rates_per_s["llm"] == 3.0
    assert f.peak_rates_per_s["llm"] == 6.0


def test_forecast_peak_decays_by_peak_decay_per_epoch() -> None:
    assert PEAK_DECAY == 0.9
    f = Forecast(rates_per_s={"llm": 10.0}, cell_weights={"a": 1.0}, peak_rates_per_s={"llm": 10})
    quiet = window({"llm": {"a": 0.0}})
    peaks = []
    for _ in range(3):
        f = forecast_demand(quiet, f)
        peaks.append(f.peak_rates_per_s["llm"])
    assert peaks == pytest.approx([9.0, 8.1, 7.29])
    f = forecast_demand(window({"llm": {"a": 8.5}}), f)
    assert f.peak_rates_per_s["llm"] == 8.5, "a window above the faded peak is the new peak"
    f = forecast_demand(window({"llm": {"a": 7.0}}), f)
    assert f.peak_rates_per_s["llm"] == pytest.approx(0.9 * 8.5)


def test_a_partial_window_does_not_touch_the_peaks() -> None:
    early = window({"llm": {"a": 50.0}}, t=10.0, window_s=30.0)
    assert forecast_demand(early).peak_rates_per_s == {}
    previous = Forecast(rates_per_s={"llm": 1.0}, cell_weights={}, peak_rates_per_s={"llm": 2.0})
    f = forecast_demand(early, previous)
    assert f.peak_rates_per_s == {"llm": 2.0}, "neither raised nor decayed"
    assert f.rates_per_s["llm"] == pytest.approx(25.5), "rates are still smoothed"
    exactly = window({"llm": {"a": 50.0}}, t=30.0, window_s=30.0)
    assert forecast_demand(exactly, previous).peak_rates_per_s == {"llm": 50.0}, "a full one"


def test_forecast_from_the_simulated_city_window() -> None:
    rows = [{"arrival_s": 0.5 * k, "input_tokens": 32, "output_tokens": 2} for k in range(120)]
    city = SimulatedCity(SC, make_workload(SC, rows), ROUTERS.create("greedy"))
    city.advance(40.0)
    t = city.observe()
    f = forecast_demand(t)
    # arrivals in (10, 40]: 10.5, 11.0, ..., 40.0, i.e. 60 prompts over 30 s
    assert f.rates_per_s == {"llm": pytest.approx(2.0)}
    assert f.cell_weights == {"a": pytest.approx(1.0)}


def test_the_simulated_city_reports_the_windows_prompt_sizes() -> None:
    rows = [
        {"arrival_s": 0.5 * k, "input_tokens": 100 if k % 2 else 300, "output_tokens": 4 + k % 3}
        for k in range(120)
    ]
    w = make_workload(SC, rows)
    city = SimulatedCity(SC, w, ROUTERS.create("greedy"))
    city.advance(40.0)
    m = city.observe().models[0]
    came = (w.arrival_s > 10.0) & (w.arrival_s <= 40.0)
    assert m.mean_input_tokens == pytest.approx(w.input_tokens[came].mean())
    assert m.mean_input_tokens == pytest.approx(200.0)
    assert 4.0 <= m.mean_output_tokens <= 6.0
    quiet = SimulatedCity(SC, make_workload(SC, []), ROUTERS.create("greedy"))
    quiet.advance(40.0)
    assert quiet.observe().models[0].mean_input_tokens is None
    assert quiet.observe().models[0].mean_output_tokens is None


def sizes(model: str, tokens_in: float | None, tokens_out: float | None) -> Telemetry:
    t = window({model: {"a": 1.0}})
    m = t.models[0].model_copy(
        update={"mean_input_tokens": tokens_in, "mean_output_tokens": tokens_out}
    )
    return t.model_copy(update={"models": [m]})


def test_forecast_smooths_prompt_sizes_and_keeps_them_when_none_were_measured() -> None:
    first = forecast_demand(sizes("llm", 1000.0, 200.0))
    assert first.input_tokens == {"llm": 1000.0} and first.output_tokens == {"llm": 200.0}
    f = forecast_demand(sizes("llm", 2000.0, None), first)
    assert f.input_tokens == {"llm": pytest.approx(1500.0)}
    assert f.output_tokens == {"llm": 200.0}, "nothing served this window: the last size"


def busy(seen_per_s: float = 2.0, served: int = 60) -> Telemetry:
    """The idle city's telemetry at 100 s, its 30-s window with these arrivals and served."""
    t = observed()
    m = t.models[0].model_copy(update={"arrivals_per_s": seen_per_s, "served": served})
    return t.model_copy(update={"models": [m]})


def test_the_twin_sizes_its_prompts_like_the_citys() -> None:
    plain = Forecast(rates_per_s={"llm": 5.0}, cell_weights={})
    base = WhatIf(SC, plain, busy(), horizon_s=100.0).workload
    have_in, have_out = base.input_tokens.mean(), base.output_tokens.mean()
    twice = plain.model_copy(
        update={"input_tokens": {"llm": 2 * have_in}, "output_tokens": {"llm": have_out / 2}}
    )
    w = WhatIf(SC, twice, busy(), horizon_s=100.0).workload
    assert w.arrival_s.tolist() == base.arrival_s.tolist(), "the same prompts, resized"
    assert w.input_tokens.mean() == pytest.approx(2 * have_in, rel=0.01)
    assert w.output_tokens.mean() == pytest.approx(have_out / 2, rel=0.05)
    assert w.output_tokens.min() >= 1
    far = plain.model_copy(update={"input_tokens": {"llm": 100 * have_in}})
    assert sized_like(base, far, busy()).input_tokens.mean() == pytest.approx(4 * have_in, rel=0.01)
    other = plain.model_copy(update={"input_tokens": {"llm2": 5.0}})
    assert sized_like(base, other, busy()) is base


def test_the_twin_keeps_its_sizes_when_the_window_could_differ_by_chance() -> None:
    plain = Forecast(rates_per_s={"llm": 5.0}, cell_weights={})
    base = WhatIf(SC, plain, busy(), horizon_s=100.0).workload
    se = base.input_tokens.std() / np.sqrt(60)
    near = plain.model_copy(update={"input_tokens": {"llm": base.input_tokens.mean() + se}})
    assert sized_like(base, near, busy()) is base, "one standard error off: noise"
    twice = plain.model_copy(update={"input_tokens": {"llm": 2 * base.input_tokens.mean()}})
    assert sized_like(base, twice, busy(seen_per_s=0.0)) is base, "no prompt seen"
    assert sized_like(base, twice, busy(seen_per_s=1 / 30)) is base, "one seen: could be chance"
    assert sized_like(base, twice, busy(seen_per_s=10 / 30)) is not base, "ten seen: evidence"
    served_none = plain.model_copy(update={"output_tokens": {"llm": 2 * base.output_tokens.mean()}})
    assert sized_like(base, served_none, busy(served=0)) is base


def test_longer_prompts_in_the_city_make_the_twin_predict_slower_service() -> None:
    plain = Forecast(rates_per_s={"llm": 4.0}, cell_weights={"a": 1.0})
    base = WhatIf(SC, plain, busy(), horizon_s=30.0)
    out = float(base.workload.output_tokens.mean())
    longer = plain.model_copy(update={"output_tokens": {"llm": 3 * out}})
    one = replicas("a")
    assert (
        WhatIf(SC, longer, busy(), horizon_s=30.0).evaluate(one).mean_latency_s
        > 1.5 * base.evaluate(one).mean_latency_s
    )


# ---- the score ------------------------------------------------------------------------------


def pred(mean: float, jain: float, objective: float | None = None) -> Prediction:
    return Prediction(
        mean_latency_s=mean, jain=jain, per_model_mean_s={}, refused=0, prompts=1,
        objective_s=objective,
    )  # fmt: skip


def test_score_inflates_the_mean_below_the_fairness_target() -> None:
    assert pred(2.0, 1.0).score() == 2.0
    assert pred(2.0, 0.93).score() == 2.0
    assert pred(2.0, 0.83).score() == pytest.approx(2.0 * (1 + 3 * 0.1))
    assert pred(2.0, 0.5).score(jain_target=0.6) == pytest.approx(2.0 * 1.3)
    assert pred(2.0, 0.5, objective=3.0).score() == pytest.approx(3.0 * (1 + 3 * 0.43))
    assert pred(2.0, 0.99, objective=0.5).score() == 0.5, "the objective replaces the mean"


# ---- what-if predictions --------------------------------------------------------------------


def test_the_twin_scenario_is_the_forecast_on_the_live_city() -> None:
    t = observed(t=100.0, down=("c",))
    t = t.model_copy(update={"down_links": [("a", "b")]})
    whatif = WhatIf(SC, Forecast(rates_per_s={"llm": 3.0}, cell_weights={"a": 1.0}), t,
                    horizon_s=40.0)  # fmt: skip
    twin = whatif.scenario
    [demand] = twin.workload.demands
    assert demand.arrivals.rate_per_s == 3.0
    assert demand.trace_offset_s == TRACE_SHIFT_S
    assert twin.placement == {} and twin.notices == []
    assert twin.duration_s == 40.0 and twin.control.drain_limit_s == 40.0
    assert [c.users for c in twin.cells] == [10_000]
    assert twin.events == [
        CityEvent(at_s=0.0, kind="site_down", site="c"),
        CityEvent(at_s=0.0, kind="link_down", link=("a", "b")),
    ]
    assert SC.events == [] and SC.placement == {"a": ["llm"]}, "the city's scenario unchanged"
    long = WhatIf(SC, Forecast(rates_per_s={"llm": 3.0}, cell_weights={}), t, horizon_s=300.0)
    assert long.scenario.control.drain_limit_s == 60.0
    assert long.scenario.cells == SC.cells, "no cell weights: the scenario's populations"


def test_the_twin_workload_follows_the_forecast_rate() -> None:
    t = observed()
    whatif = WhatIf(SC, Forecast(rates_per_s={"llm": 5.0}, cell_weights={}), t, horizon_s=100.0)
    assert len(whatif.workload) == pytest.approx(500, rel=0.2)
    assert whatif.workload.arrival_s.max() < 100.0
    quiet = WhatIf(SC, Forecast(rates_per_s={"llm": 0.0}, cell_weights={}), t, horizon_s=100.0)
    assert len(quiet.workload) == 0


def replicas(*sites: str) -> list:
    one = observed().replicas[0].deployment
    return [one.model_copy(update={"replica_id": k, "site": s}) for k, s in enumerate(sites)]


def whatif_at(rate: float, **kw) -> WhatIf:
    forecast = Forecast(rates_per_s={"llm": rate}, cell_weights={"a": 1.0})
    return WhatIf(SC, forecast, observed(), horizon_s=20.0, **kw)


def test_with_no_replica_every_prompt_is_refused_and_charged_the_horizon() -> None:
    whatif = whatif_at(4.0)
    p = whatif.evaluate([])
    assert p.prompts == len(whatif.workload) > 0
    assert p.refused == p.prompts
    assert p.mean_latency_s == 20.0
    assert p.per_model_mean_s == {} and p.jain == 1.0 and p.objective_s is None


def test_the_twin_compares_candidates_on_the_same_prompts() -> None:
    whatif = whatif_at(4.0)
    first = whatif.evaluate(replicas("a"))
    assert whatif.evaluate(replicas("a")) == first
    assert whatif.evaluations == 2
    assert whatif_at(4.0).evaluate(replicas("a")) == first, "same seed, same workload"
    assert whatif_at(4.0, seed=1).workload.arrival_s.tolist() != whatif.workload.arrival_s.tolist()


@pytest.mark.parametrize("rate", [2.0, 8.0, 20.0])
def test_more_capacity_is_predicted_no_worse(rate: float) -> None:
    whatif = whatif_at(rate)
    one, two, three = (whatif.evaluate(replicas(*s)) for s in (["a"], ["a", "b"], ["a", "b", "c"]))
    assert two.mean_latency_s <= one.mean_latency_s
    assert three.mean_latency_s <= two.mean_latency_s
    assert two.refused <= one.refused
    assert two.score() <= one.score()


def test_a_load_applied_at_time_zero_pays_its_cold_start() -> None:
    """The same second replica, warm or loaded now, at a rate that needs it: loading is no
    better than warm, and better than never."""
    whatif = whatif_at(12.0)
    warm = whatif.evaluate(replicas("a", "b"))
    cold = whatif.evaluate(replicas("a"), [DeploymentAction(site="b", model="llm", op="load")])
    alone = whatif.evaluate(replicas("a"))
    assert warm.mean_latency_s <= cold.mean_latency_s <= alone.mean_latency_s
    assert cold.mean_latency_s < alone.mean_latency_s


def test_predict_is_the_charged_mean_of_the_outcomes() -> None:
    """Recomputed by hand from the per-prompt outcomes: refusals count the horizon, the
    per-model mean is over served prompts, Jain is over reference / mean per model."""
    forecast = Forecast(rates_per_s={"llm": 14.0, "llm2": 2.0}, cell_weights={"a": 1.0})
    whatif = WhatIf(TWO, forecast, observed(TWO), horizon_s=20.0)
    deps = [r.deployment for r in observed(TWO).replicas]
    out = whatif.simulate(deps)
    p = whatif.predict(out)
    lat = out.latency_s
    served = ~np.isnan(lat)
    assert p.prompts == len(lat) and p.refused == int((~served).sum())
    assert p.mean_latency_s == pytest.approx((lat[served].sum() + 20.0 * p.refused) / len(lat))
    speeds = []
    for k, m in enumerate(("llm", "llm2")):
        sel = served & (whatif.workload.model == k)
        assert p.per_model_mean_s[m] == pytest.approx(lat[sel].mean())
        speeds.append(whatif.references[m] / lat[sel].mean())
    x = np.array(speeds)
    assert p.jain == pytest.approx(x.sum() ** 2 / (len(x) * (x**2).sum()))


# ---- operator intents -------------------------------------------------------------------------


def test_operator_priorities_multiply() -> None:
    intents = [
        intent("priority", 0, 100, models=["llm"], factor=2.0),
        intent("priority", 0, 100, models=["llm", "llm2"], factor=1.5),
        intent("priority", 0, 100, models=["llm2"], factor=None),
        intent("surge", 0, 100, models=["llm"], factor=3.0),
        intent("target", 0, 100, models=["llm"], bound_s=2.0),
    ]
    assert operator_priorities(intents) == {"llm": 3.0, "llm2": 1.5}
    assert operator_priorities([]) == {}


def test_priorities_weigh_the_objective() -> None:
    """One model: every prompt has the same weight, so the weighted mean is the mean. Two:
    the mean of charged latencies weighted by each prompt's model's priority."""
    whatif = whatif_at(6.0, intents=[intent("priority", 90, 200, models=["llm"], factor=2.0)])
    assert whatif.priorities == {"llm": 2.0}
    p = whatif.evaluate(replicas("a"))
    assert p.objective_s == pytest.approx(p.mean_latency_s)
    forecast = Forecast(rates_per_s={"llm": 14.0, "llm2": 2.0}, cell_weights={"a": 1.0})
    pri = [intent("priority", 90, 200, models=["llm2"], factor=4.0)]
    whatif = WhatIf(TWO, forecast, observed(TWO), horizon_s=20.0, intents=pri)
    out = whatif.simulate([r.deployment for r in observed(TWO).replicas])
    p = whatif.predict(out)
    charged = np.where(np.isnan(out.latency_s), 20.0, out.latency_s)
    w = np.where(whatif.workload.model == 1, 4.0, 1.0)
    assert p.objective_s == pytest.approx((w * charged).sum() / w.sum())


def test_a_missed_target_adds_the_mean_times_its_relative_excess() -> None:
    loose = whatif_at(6.0, intents=[intent("target", 90, 200, models=["llm"], bound_s=500.0)])
    p = loose.evaluate(replicas("a"))
    assert loose.targets == {"llm": 500.0}
    assert p.objective_s == pytest.approx(p.mean_latency_s), "met: no excess"
    tight = whatif_at(6.0, intents=[intent("target", 90, 200, models=["llm"], bound_s=0.5)])
    p = tight.evaluate(replicas("a"))
    excess = p.per_model_mean_s["llm"] / 0.5 - 1.0
    assert excess > 0
    assert p.objective_s == pytest.approx(p.mean_latency_s * (1.0 + excess))
    assert p.score() > p.mean_latency_s


def test_only_intents_acting_inside_the_horizon_enter_the_twin() -> None:
    """At 100 s with a 20-s horizon: windows overlapping (100, 120] count."""
    surge = {"models": ["llm"], "factor": 3.0}
    cases = {
        (110.0, 150.0): True,
        (50.0, 105.0): True,
        (50.0, 100.0): False,  # ended now
        (130.0, 200.0): False,  # opens after the horizon
        (10.0, 50.0): False,
    }
    for (start, end), inside in cases.items():
        whatif = whatif_at(4.0, intents=[intent("surge", start, end, **surge)])
        assert bool(whatif.intents) == inside, (start, end)
        assert bool(whatif.scenario.workload.shifts) == inside, (start, end)
    none = whatif_at(4.0, intents=[Intent(kind="none", start_s=90.0, end_s=200.0)])
    assert none.intents == []


def test_a_surge_raises_the_twin_workload_inside_its_window() -> None:
    plain = whatif_at(4.0)
    surged = whatif_at(4.0, intents=[intent("surge", 110, 115, models=["llm"], factor=4.0)])
    assert surged.scenario.workload.shifts == [
        DemandShift(at_s=10.0, model="llm", factor=4.0),
        DemandShift(at_s=15.0, model="llm", factor=0.25),
    ]

    def count(w, lo: float, hi: float) -> int:
        return int(((w.workload.arrival_s >= lo) & (w.workload.arrival_s < hi)).sum())

    assert count(surged, 10, 15) > 2 * count(plain, 10, 15)
    before, base = count(surged, 0, 10), count(plain, 0, 10)
    assert abs(before - base) <= 0.25 * base, "before the window: as forecast"


def rows(shifts: list[DemandShift]) -> list[tuple]:
    return [(s.at_s, s.model, s.cell, s.factor) for s in shifts]


def test_surge_shifts_in_the_twins_clock() -> None:
    t = observed(t=100.0)
    forecast = Forecast(rates_per_s={"llm": 2.0}, cell_weights={})
    surge = intent("surge", 130, 160, models=["llm"], factor=3.0)
    shifts, events = intent_shifts(SC, forecast, t, 120.0, [surge], {})
    assert rows(shifts) == [(30.0, "llm", None, 3.0), (60.0, "llm", None, pytest.approx(1 / 3))]
    assert events == []
    open_ended = intent("surge", 50, 400, models=["llm"], factor=3.0)
    shifts, _ = intent_shifts(SC, forecast, t, 120.0, [open_ended], {})
    assert shifts == [DemandShift(at_s=0.0, model="llm", factor=3.0)], "started; ends past it"


def test_surge_factor_is_relative_to_the_rate_when_the_notice_was_read() -> None:
    """Read at 1.0/s, a x3 surge means 3.0/s; the forecast already holds 2.0/s, so the twin
    scales by 1.5. Once the forecast holds all of it, nothing is left to add."""
    t = observed(t=100.0)
    forecast = Forecast(rates_per_s={"llm": 2.0}, cell_weights={})
    surge = intent("surge", 110, 130, models=["llm"], factor=3.0, notice_id="n7")
    shifts, _ = intent_shifts(SC, forecast, t, 120.0, [surge], {"n7": {"llm": 1.0}})
    assert shifts[0] == DemandShift(at_s=10.0, model="llm", factor=1.5)
    shifts, _ = intent_shifts(SC, forecast, t, 120.0, [surge], {"n7": {"llm": 0.5}})
    assert shifts == [], "3 x 0.5 = 1.5/s is below the 2.0/s forecast"
    shifts, _ = intent_shifts(SC, forecast, t, 120.0, [surge], {"other": {"llm": 0.5}})
    assert shifts[0].factor == 3.0, "another notice's baseline does not apply"
    idle = Forecast(rates_per_s={"llm": 0.0}, cell_weights={})
    assert intent_shifts(SC, idle, t, 120.0, [surge], {})[0] == []


def test_a_surge_from_named_cells_concentrates_there() -> None:
    """Cell a has 10 of 40 users: the city-wide x3 is all extra from a, whose share of users
    is scaled by 1 + (3 - 1) / 0.25 = 9."""
    t = observed(CELLS, t=100.0)
    forecast = Forecast(rates_per_s={"llm": 2.0}, cell_weights={})
    surge = intent("surge", 110, 130, models=["llm"], cells=["a", "zz"], factor=3.0)
    shifts, _ = intent_shifts(CELLS, forecast, t, 120.0, [surge], {})
    assert rows(shifts) == [
        (10.0, "llm", None, 3.0),
        (30.0, "llm", None, pytest.approx(1 / 3)),
        (10.0, "llm", "a", 9.0),
        (30.0, "llm", "a", pytest.approx(1 / 9)),
    ], "the unknown cell zz is ignored"


def test_maintenance_takes_live_sites_down_for_its_window() -> None:
    t = observed(t=100.0, down=("c",))
    forecast = Forecast(rates_per_s={"llm": 2.0}, cell_weights={})
    work = intent("maintenance", 120, 150, sites=["b", "c"])
    shifts, events = intent_shifts(SC, forecast, t, 120.0, [work], {})
    assert shifts == []
    assert events == [
        CityEvent(at_s=20.0, kind="site_down", site="b"),
        CityEvent(at_s=50.0, kind="site_up", site="b"),
    ], "c is down already: nothing to plan for it"
    long = intent("maintenance", 120, 900, sites=["b"])
    assert intent_shifts(SC, forecast, t, 120.0, [long], {})[1] == [
        CityEvent(at_s=20.0, kind="site_down", site="b")
    ]


def test_maintenance_in_the_horizon_moves_the_twins_prompts() -> None:
    """b under maintenance from now: a twin replica at b serves nothing, so with only b the
    prompts are refused; with a too, a serves them."""
    work = [intent("maintenance", 90, 200, sites=["b"])]
    whatif = whatif_at(4.0, intents=work)
    assert whatif.scenario.events == [CityEvent(at_s=0.0, kind="site_down", site="b")]
    only_b = whatif.evaluate(replicas("b"))
    assert only_b.refused == only_b.prompts
    both = whatif.evaluate(replicas("a", "b"))
    assert both.refused == 0


# ---- the live state: backlog and the rates' uncertainty -------------------------------------


def test_rate_upper_bound_is_wide_on_little_evidence() -> None:
    once = rate_upper_bound(0.2, 5.0)
    assert once > 2.5 * 0.2, "one prompt in 5 s: the rate may well be several times that"
    full = rate_upper_bound(0.2, 30.0)
    many = rate_upper_bound(0.2, 3000.0)
    assert once > full > many > 0.2
    assert many == pytest.approx(0.2, rel=0.1)
    assert rate_upper_bound(0.0, 30.0) > 0.0, "none seen is not a proof of none"


def test_the_pessimistic_twin_raises_only_the_named_models() -> None:
    t = window({"llm": {"a": 0.2}, "llm2": {"a": 0.2}}, t=5.0)
    forecast = Forecast(rates_per_s={"llm": 0.2, "llm2": 0.2}, cell_weights={"a": 1.0})
    busy = WhatIf(TWO, forecast, t, horizon_s=50.0).pessimistic({"llm2"})
    rates = {d.model: d.arrivals.rate_per_s for d in busy.scenario.workload.demands}
    assert rates["llm"] == 0.2
    assert rates["llm2"] == pytest.approx(rate_upper_bound(0.2, 5.0))


def queued(n: int, *, running: int = 0) -> Telemetry:
    """The tiny city's telemetry with `n` prompts waiting (and `running` in the batch) at its
    replica."""
    t = observed()
    r = t.replicas[0].model_copy(update={"queue_len": n, "running": running})
    return t.model_copy(update={"replicas": [r]})


def test_the_twin_starts_from_the_live_queues() -> None:
    forecast = Forecast(rates_per_s={"llm": 1.0}, cell_weights={"a": 1.0})
    empty = WhatIf(SC, forecast, queued(0), horizon_s=20.0)
    behind = WhatIf(SC, forecast, queued(30, running=8), horizon_s=20.0)
    assert behind.backlog == [34] and empty.backlog == [0]
    assert len(behind.workload) == len(empty.workload) + 34
    assert (behind.workload.arrival_s[:34] == 0).all()
    assert (behind.workload.model[:34] == 0).all()
    now = behind.current
    assert behind.evaluate(now).mean_latency_s > empty.evaluate(now).mean_latency_s
    more = [*now, now[0].model_copy(update={"replica_id": 9, "site": "b"})]
    assert behind.evaluate(more).mean_latency_s < behind.evaluate(now).mean_latency_s


def test_a_backlog_waits_at_its_replica_without_routing() -> None:
    """Three prompts from cell a (next to site a) carried over at site b's replica are served
    there, though the router would pick a."""
    deployments = replicas("a", "b")
    rows = [{"arrival_s": 0.0, "model": "llm", "cell": "a", "input_tokens": 100,
             "output_tokens": 20} for _ in range(4)]  # fmt: skip
    wl = make_workload(SC, rows)
    city = SimulatedCity(SC, wl, ROUTERS.create("greedy"), deployments=deployments, backlog=[0, 3])
    city.advance(100.0)
    out = city.finish()
    assert out.site[:3].tolist() == [1, 1, 1]
    assert out.site[3] == 0, "the fourth is routed, to the nearest"
    assert np.isfinite(out.latency_s).all()


def test_a_forecast_is_refuted_only_far_above_and_on_a_window_wholly_since_the_plan() -> None:
    plan = Forecast(rates_per_s={"llm": 2.0, "llm2": 2.0}, cell_weights={})
    seen = window({"llm": {"a": 4.0}, "llm2": {"a": 2.5}}, t=100.0)
    assert forecast_refuted(plan, seen, planned_at_s=60.0) == ["llm"]
    assert forecast_refuted(plan, seen, planned_at_s=80.0) == [], "window partly before the plan"
    assert forecast_refuted(None, seen, planned_at_s=60.0) == []
    assert forecast_refuted(plan, seen, planned_at_s=None) == []
    lower = window({"llm": {"a": 0.1}, "llm2": {"a": 0.0}}, t=100.0)
    assert forecast_refuted(plan, lower, planned_at_s=0.0) == [], "less demand needs no hurry"
    new = window({"llm": {"a": 0.5}}, t=100.0)
    assert forecast_refuted(Forecast(rates_per_s={}, cell_weights={}), new, 0.0) == ["llm"]
